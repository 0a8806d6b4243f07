"""CreateUser (a parley extension, ``parleychat`` model): chat accounts for the seed fronts.

The model validates the members' shapes; ``shared.features.accounts`` owns the rest (uniqueness,
the scrypt hash). The password is never echoed, logged or returned.
"""

from __future__ import annotations

from typing import Any

from api.context import ApiContext, member
from api.errors import ConflictException, ValidationException
from shared.features import accounts

USER_TYPE = "USER"


async def create_user(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    username = params["username"]
    try:
        account = await accounts.create_account(
            ctx.store,
            username,
            params["password"],
            member(params, "email", ""),
            member(params, "attributes", {}),
        )
    except accounts.UsernameTaken:
        raise ConflictException(f"Username {username} is taken", username, USER_TYPE) from None
    except accounts.AccountError as error:
        raise ValidationException.field("username", str(error)) from None
    return {"userId": account.user_id}
