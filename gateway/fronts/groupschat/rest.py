"""The seed's REST API: ``/users``, ``/login``, ``/sessions``, ``/groups`` (bearer JWT on the last two).

Answers are the seed's bodies (``{id}``, ``{token}``, ``{created_at, id, messaging_url}``); refusals
are ``{"error": "<why>"}`` with an HTTP status (400 bad body, 401 no/bad token or wrong password,
403 not allowed, 404 unknown, 409 username taken, 429 too many attempts or registrations). Owns HTTP ↔
``accounts`` / ``groups.Groups``; must not log a password, a token or a body.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.fronts import http
from shared.config import Settings
from shared.features import accounts

from . import auth, codec
from .groups import GroupError, Groups

REST_WINDOW_MS = 1000
REST_PER_SECOND = 20  # authenticated requests per user per second, across replicas
MAX_BODY_BYTES = 64 * 1024
REGISTER_WINDOW_MS = 60_000

Handler = Callable[[web.Request, str], Awaitable[Any]]


def answer(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json")


def refuse(message: str, status: int) -> web.Response:
    return web.Response(body=codec.rest_error(message), status=status, content_type="application/json")


async def _body(request: web.Request) -> bytes:
    body = await http.read_body(request, MAX_BODY_BYTES)
    if body is None:
        raise codec.BadBody(f"Bodies must be at most {MAX_BODY_BYTES} bytes")
    return body


class Rest:
    def __init__(self, settings: Settings, groups: Groups, public_url: Callable[[web.Request, str], str]) -> None:
        self.settings = settings
        self.groups = groups
        self.public_url = public_url

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/users", self.register),
            web.post("/login", self.login),
            web.post("/sessions", self._wrap(self.session)),
            web.post("/groups", self._wrap(self.create)),
            web.put("/groups/{id}/left", self._wrap(self.left)),
            web.put("/groups/{id}/join", self._wrap(self.join)),
        ]

    async def register(self, request: web.Request) -> web.Response:
        # an account costs a scrypt hash: registrations count per address and minute, like logins
        hits = await self.groups.store.counters.hit(f"groupschat:register:{request.remote or ''}", REGISTER_WINDOW_MS)
        if hits > self.settings.login_attempts_per_address:
            return refuse("Too many registrations; try again later", 429)
        try:
            body = codec.body_object(await _body(request))
            account = await accounts.create_account(
                self.groups.store,
                codec.string(body, "username", limit=64),
                codec.string(body, "password", limit=accounts.MAX_PASSWORD),
                codec.string(body, "email", required=False, limit=accounts.MAX_EMAIL),
            )
        except codec.BadBody as error:
            return refuse(str(error), 400)
        except accounts.UsernameTaken:
            return refuse("Username is already taken", 409)
        except accounts.AccountError as error:
            return refuse(str(error), 400)
        return answer({"id": account.user_id})

    async def login(self, request: web.Request) -> web.Response:
        if not self.settings.groupschat_jwt_secret:
            return refuse("Logins are off: the server has no PARLEY_GROUPSCHAT_JWT_SECRET", 503)
        try:
            body = codec.body_object(await _body(request))
            username = codec.string(body, "username", limit=64)
            password = codec.string(body, "password", limit=accounts.MAX_PASSWORD)
        except codec.BadBody as error:
            return refuse(str(error), 400)
        result, account = await accounts.login(
            self.groups.store,
            username,
            password,
            request.remote or "",
            per_user=self.settings.login_attempts_per_user,
            per_address=self.settings.login_attempts_per_address,
        )
        if result == accounts.LoginResult.THROTTLED:
            return refuse("Too many login attempts; try again later", 429)
        if account is None:
            return refuse("Wrong username or password", 401)
        token = auth.issue(
            account.user_id, self.settings.groupschat_jwt_secret, self.settings.groupschat_token_ttl_seconds
        )
        return answer({"token": token})

    def _wrap(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            token = auth.bearer(request.headers.get("authorization"))
            if not token:
                return refuse("No authorization token", 401)
            try:
                user_id = auth.user_of(token, self.settings.groupschat_jwt_secret)
            except auth.InvalidToken:
                return refuse("Invalid or expired token", 401)
            hits = await self.groups.store.counters.hit(f"groupschat:rest:{user_id}", REST_WINDOW_MS)
            if hits > REST_PER_SECOND:
                return refuse(f"Too many requests: at most {REST_PER_SECOND} per second", 429)
            try:
                return answer(await handler(request, user_id))
            except codec.BadBody as error:
                return refuse(str(error), 400)
            except GroupError as error:
                return refuse(error.message, error.status)

        return run

    async def session(self, request: web.Request, user_id: str) -> dict[str, Any]:
        codec.body_object(await _body(request))  # device fields are accepted and not kept
        session = await self.groups.open_session(user_id)
        return {
            "created_at": session.created_ms,
            "id": session.session_id,
            "messaging_url": self.public_url(request, session.key),
        }

    async def create(self, request: web.Request, user_id: str) -> dict[str, Any]:
        body = codec.parse_group(await _body(request), self.settings.groupschat_max_group_members)
        return {"id": await self.groups.create(user_id, body)}

    def _target(self, body: bytes, user_id: str) -> str:
        return codec.string(codec.body_object(body), "user_id", required=False, limit=codec.MAX_ID_LENGTH) or user_id

    async def left(self, request: web.Request, user_id: str) -> dict[str, Any]:
        target = self._target(await _body(request), user_id)
        await self.groups.leave(user_id, request.match_info["id"], target)
        return {}

    async def join(self, request: web.Request, user_id: str) -> dict[str, Any]:
        target = self._target(await _body(request), user_id)
        await self.groups.join(user_id, request.match_info["id"], target)
        return {}
