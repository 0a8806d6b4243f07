"""Chat accounts (a parley extension shared by the seed fronts): username, password, attributes.

Owns: creating an account (username unique over every replica: claimed atomically in the Store's
marks before the record is written), the password hash (``hashlib.scrypt``, salted, parameters
stored with the hash, compared in constant time), and login checks rate-limited per username and
per client address (``Counters.hit``).

Must not: log or return a password or its hash (``Account`` has no such field), or know any
front's wire shapes. Callers: ``POST /CreateUser``, ``parley users add``, the ``line`` front.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from shared.clock import now_ms
from shared.engine.counters import Counters
from shared.engine.marks import Marks
from shared.engine.records import Record, RecordKind, RecordReader, Records
from shared.protocol.ids import new_id

# scrypt cost: 16 MiB and ~50 ms per hash on one core; stored with each hash so it can be raised
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_LEN = 1 << 14, 8, 1, 32
FOREVER_MS = 100 * 365 * 86_400_000  # a username is never released
MAX_ACCOUNTS = 1 << 40  # Records.create's quota: accounts are not a quota'd resource
USERNAME_RE = re.compile(r"\A[A-Za-z0-9_.@-]{1,64}\Z")  # no spaces: line protocols split on them
MAX_PASSWORD = 1024
MAX_EMAIL = 254
MAX_ATTRIBUTES = 16
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_VALUE = 256
LOGIN_WINDOW_MS = 60_000


class AccountError(ValueError):
    """The request is invalid (``reason`` says what), or the username is taken."""


class UsernameTaken(AccountError):
    pass


class LoginResult(StrEnum):
    OK = "ok"
    NO_USER = "no_user"
    BAD_PASSWORD = "bad_password"
    THROTTLED = "throttled"


@dataclass(slots=True, frozen=True)
class Account:
    user_id: str
    username: str
    email: str = ""
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        """The ``nama`` attribute (seed 000's display name), else the username."""
        return self.attributes.get("nama") or self.username


class AccountReader(Protocol):
    @property
    def records(self) -> RecordReader: ...

    @property
    def counters(self) -> Counters: ...


class AccountStore(Protocol):
    @property
    def records(self) -> Records: ...

    @property
    def marks(self) -> Marks: ...


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_LEN)
    return "$".join(("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)))


def verify_password(password: str, stored: str) -> bool:
    """Constant-time compare against a :func:`hash_password` string; False for any malformed one."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def validate(username: str, password: str, email: str, attributes: dict[str, str]) -> None:
    if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
        raise AccountError("username must be 1 to 64 of A-Z a-z 0-9 _ . @ -")
    if not isinstance(password, str) or not 1 <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"password must be 1 to {MAX_PASSWORD} characters")
    if not isinstance(email, str) or len(email) > MAX_EMAIL:
        raise AccountError(f"email must be a string of at most {MAX_EMAIL} characters")
    if not isinstance(attributes, dict) or len(attributes) > MAX_ATTRIBUTES:
        raise AccountError(f"attributes must be a map of at most {MAX_ATTRIBUTES} entries")
    for key, value in attributes.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_ATTRIBUTE_KEY:
            raise AccountError(f"attribute keys must be 1 to {MAX_ATTRIBUTE_KEY} characters")
        if not isinstance(value, str) or len(value) > MAX_ATTRIBUTE_VALUE:
            raise AccountError(f"attribute values must be strings of at most {MAX_ATTRIBUTE_VALUE} characters")


async def create_account(
    store: AccountStore, username: str, password: str, email: str = "", attributes: dict[str, str] | None = None
) -> Account:
    """Create an account; :class:`UsernameTaken` if the username exists (on any replica)."""
    attributes = dict(attributes or {})
    validate(username, password, email, attributes)
    password_hash = await asyncio.to_thread(hash_password, password)  # ~50 ms of CPU: off the loop
    if not await store.marks.claim(_username_mark(username), FOREVER_MS):
        raise UsernameTaken(f"username {username!r} is taken")
    account = Account(new_id(), username, email, attributes)
    record: Record = {
        "user_id": account.user_id,
        "username": username,
        "email": email,
        "attributes": attributes,
        "password": password_hash,
    }
    created = now_ms()
    await store.records.create(RecordKind.ACCOUNT, username, record, created, MAX_ACCOUNTS)
    await store.records.create(RecordKind.ACCOUNT_ID, account.user_id, {"username": username}, created, MAX_ACCOUNTS)
    return account


async def get_account(records: RecordReader, username: str) -> Account | None:
    record = await records.get(RecordKind.ACCOUNT, username) if USERNAME_RE.fullmatch(username) else None
    return None if record is None else _account(record)


async def login(
    store: AccountReader, username: str, password: str, ip: str, *, per_user: int, per_address: int
) -> tuple[LoginResult, Account | None]:
    """Check a login; every attempt counts against the username's and the address's minute."""
    user_hits = await store.counters.hit(f"login:user:{username[:64]}", LOGIN_WINDOW_MS)
    address_hits = await store.counters.hit(f"login:ip:{ip}", LOGIN_WINDOW_MS)
    if user_hits > per_user or address_hits > per_address:
        return LoginResult.THROTTLED, None
    record = await store.records.get(RecordKind.ACCOUNT, username) if USERNAME_RE.fullmatch(username) else None
    if record is None:
        return LoginResult.NO_USER, None
    if len(password) > MAX_PASSWORD or not await asyncio.to_thread(verify_password, password, record["password"]):
        return LoginResult.BAD_PASSWORD, None
    return LoginResult.OK, _account(record)


def _account(record: Record) -> Account:
    return Account(record["user_id"], record["username"], record.get("email", ""), dict(record.get("attributes", {})))


def _username_mark(username: str) -> str:
    return f"account-username:{username}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
