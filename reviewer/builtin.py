"""Built-in review handlers, addressed as ``parley:NAME?PARAM=VALUE&…`` (pure, no I/O).

A built-in has exactly the contract of an HTTP handler: it receives the IVS request JSON (a dict,
see ``protocol.handler_request``) and returns the IVS response JSON, which goes through the same
validation. The URI is parsed once per distinct URI (cached), so typos fail fast as an
invocation error (the room's fallback applies) rather than silently allowing everything.

Values are percent-decoded (``%7C`` for ``|`` in a regex, ``+`` or ``%20`` for a space); lists
are comma-separated. Adding one::

    @builtin("shout")
    def _shout(params: Params) -> Handler:
        _check(params, set())
        return lambda request: {"ReviewResult": "ALLOW", "Content": request["Content"].upper()}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Params = dict[str, str]
Handler = Callable[[dict[str, Any]], dict[str, Any]]
Factory = Callable[[Params], Handler]

SCHEME = "parley"
_FACTORIES: dict[str, Factory] = {}

# Links: an explicit scheme or www., or a bare host under a common TLD (``spam.com/x``).
_LINK_RE = re.compile(
    r"(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>\"']+"
    r"|\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?:com|net|org|io|gg|tv|co|me|ly|info|biz|xyz|app|dev|ru|cn|de|uk|fr|link|click|site|online|shop)"
    r"\b(?:/[^\s<>\"']*)?",
    re.IGNORECASE,
)


class BuiltinError(ValueError):
    """The ``parley:`` URI names no built-in or has bad parameters."""


def builtin(name: str) -> Callable[[Factory], Factory]:
    """Register ``factory(params) -> handler`` as ``parley:NAME``."""

    def register(factory: Factory) -> Factory:
        _FACTORIES[name] = factory
        return factory

    return register


def names() -> list[str]:
    return sorted(_FACTORIES)


@lru_cache(maxsize=4096)
def resolve(uri: str) -> Handler:
    """The handler for a ``parley:`` URI; raises :class:`BuiltinError` for an unusable one."""
    parts = urlsplit(uri)
    if parts.scheme != SCHEME:
        raise BuiltinError(f"not a {SCHEME}: URI")
    factory = _FACTORIES.get(parts.path)
    if factory is None:
        raise BuiltinError(f"no built-in handler {parts.path!r} (known: {', '.join(names())})")
    try:
        params = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)))
    except ValueError as exc:
        raise BuiltinError(f"bad query: {exc}") from exc
    return factory(params)


def _check(params: Params, allowed: set[str]) -> None:
    unknown = set(params) - allowed
    if unknown:
        raise BuiltinError(f"unknown parameter(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _action(params: Params) -> tuple[str, str, str]:
    action = params.get("action", "deny").lower()
    if action not in ("deny", "mask"):
        raise BuiltinError("action must be deny or mask")
    mask = params.get("mask", "*")
    if len(mask) != 1:
        raise BuiltinError("mask must be one character")
    return action, mask, params.get("reason", "")


def _filter(pattern: re.Pattern[str], action: str, mask: str, reason: str) -> Handler:
    """DENY a message the pattern matches, or ALLOW it with every match masked. Masking keeps
    the length, so a masked message is never longer than the room allows."""

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        content = request["Content"]
        if pattern.search(content) is None:
            return {"ReviewResult": "ALLOW", "Content": content}
        if action == "mask":
            return {"ReviewResult": "ALLOW", "Content": pattern.sub(lambda m: mask * len(m.group()), content)}
        return {"ReviewResult": "DENY", "Content": content, "Attributes": {"Reason": reason}}

    return handle


@builtin("allow")
def _allow(params: Params) -> Handler:
    """``parley:allow`` — every message as sent (a no-op handler, for wiring checks)."""
    _check(params, set())
    return lambda request: {"ReviewResult": "ALLOW", "Content": request["Content"]}


@builtin("deny")
def _deny(params: Params) -> Handler:
    """``parley:deny?reason=…`` — every message refused (read-only rooms)."""
    _check(params, {"reason"})
    reason = params.get("reason", "Messages are not accepted in this room")
    return lambda request: {"ReviewResult": "DENY", "Content": request["Content"], "Attributes": {"Reason": reason}}


@builtin("blocklist")
def _blocklist(params: Params) -> Handler:
    """``parley:blocklist?words=a,b&pattern=REGEX&action=deny|mask&mask=*&reason=…`` — words
    match whole words, case-insensitively; ``pattern`` is a case-insensitive regex."""
    _check(params, {"words", "pattern", "action", "mask", "reason"})
    action, mask, reason = _action(params)
    alternatives = [rf"(?<!\w){re.escape(word)}(?!\w)" for word in _list(params.get("words", ""))]
    if params.get("pattern"):
        alternatives.append(f"(?:{params['pattern']})")
    if not alternatives:
        raise BuiltinError("blocklist needs words or pattern")
    try:
        pattern = re.compile("|".join(alternatives), re.IGNORECASE)
    except re.error as exc:
        raise BuiltinError(f"bad pattern: {exc}") from exc
    return _filter(pattern, action, mask, reason or "Message contains blocked content")


@builtin("links")
def _links(params: Params) -> Handler:
    """``parley:links?allow=example.com,…&action=deny|mask&mask=*&reason=…`` — links to hosts
    other than the allowed domains (and their subdomains) are refused or masked."""
    _check(params, {"allow", "action", "mask", "reason"})
    action, mask, reason = _action(params)
    allowed = tuple(domain.lower().lstrip(".") for domain in _list(params.get("allow", "")))
    reason = reason or "Links are not allowed"

    def foreign(link: str) -> bool:
        host = _host(link)
        return not any(host == domain or host.endswith("." + domain) for domain in allowed)

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        content = request["Content"]
        links = [m for m in _LINK_RE.finditer(content) if foreign(m.group())]
        if not links:
            return {"ReviewResult": "ALLOW", "Content": content}
        if action == "deny":
            return {"ReviewResult": "DENY", "Content": content, "Attributes": {"Reason": reason}}
        masked, end = [], 0
        for m in links:
            masked += [content[end : m.start()], mask * len(m.group())]
            end = m.end()
        masked.append(content[end:])
        return {"ReviewResult": "ALLOW", "Content": "".join(masked)}

    return handle


def _host(link: str) -> str:
    if "://" not in link:
        link = "http://" + link
    try:
        return (urlsplit(link).hostname or "").lower()
    except ValueError:
        return ""
