"""Request validation driven by botocore's ivschat service model.

botocore checks only ``required`` and ``min`` on the client side (spec §5), so the server walks
each operation's input shape and checks everything: required members, JSON types, ``min``/``max``
(string length in characters, list and map sizes, integer ranges), ``pattern`` (as a full match,
which is what the model means) and ``enum``, plus tagged unions (exactly one member). Every string
it visits (members, map keys, list items) must also be valid Unicode text: a JSON escape such as
``"\\ud800"`` decodes to a string no UTF-8 encoder accepts, so it is refused here, before any
handler stores or encodes it, and so are unknown members that hold one.

Two model patterns are replaced (:data:`SHAPE_CHECKS`): ``ResourceArn``, whose model pattern
allows one character before ``/`` (spec §5.1), and ``LambdaArn``, because parley also accepts
http(s) and ``parley:`` review handlers. Rules the model cannot express live in
:data:`OPERATION_RULES`. Unknown members are ignored, as AWS does.

Messages never echo values: some members (userId, chat-token attributes) are sensitive.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.loaders import Loader
from botocore.model import OperationModel, ServiceModel, Shape

from api.errors import ValidationException
from shared import address_policy
from shared.protocol.frames import MAX_ATTRIBUTES_BYTES, attributes_size
from shared.protocol.ids import parse_arn
from shared.protocol.text import UNPAIRED_SURROGATE, has_unencodable, is_encodable
from shared.protocol.tokens import EXTENSION_CAPABILITIES

FieldErrors = list[tuple[str, str]]
MAX_TAGS = 50
RESERVED_TAG_PREFIX = "aws:"
_LAMBDA_ARN_RE = re.compile(r"arn:aws:lambda:[a-z0-9-]+:[0-9]{12}:function:.+")
_PARLEY_URI_RE = re.compile(r"parley:[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]+")


# parley's own operations (bans, …) are described in botocore's format too, so they are decoded
# and validated by the same code, and boto3 can call them (see README, "Extensions").
EXTENSIONS_DATA_PATH = Path(__file__).parent / "botocore_data"


@cache
def service_model() -> ServiceModel:
    return ServiceModel(Loader().load_service_model("ivschat", "service-2"), service_name="ivschat")


@cache
def extensions_model() -> ServiceModel:
    loader = Loader(extra_search_paths=[str(EXTENSIONS_DATA_PATH)])
    return ServiceModel(loader.load_service_model("parleychat", "service-2"), service_name="parleychat")


def operation_model(name: str) -> OperationModel:
    if name in service_model().operation_names:
        return service_model().operation_model(name)
    return extensions_model().operation_model(name)


# --- shape checks that replace the model's pattern ---------------------------------------------


def _check_resource_arn(value: str) -> str | None:
    if parse_arn(value) is None:
        return "Member must be an ivschat room or logging-configuration ARN"
    return None


def check_review_uri(value: str, allowed_networks: address_policy.Networks | None = None) -> str | None:
    """Empty (no handler), a Lambda ARN, an http(s) URL or a ``parley:`` built-in handler URI.

    With ``allowed_networks`` (CreateRoom/UpdateRoom, see :func:`check_review_handler_uri`) an
    http(s) URL must also pass the address policy as far as it can be told without DNS: no
    metadata or link-local literal, loopback/private literals only inside the allowed networks,
    no numeric host spellings but dotted quads (``shared.address_policy``). The model walk calls
    it without, as it also checks ListRooms' filter, which must still find rooms stored before.
    """
    if value == "" or _LAMBDA_ARN_RE.fullmatch(value) or _PARLEY_URI_RE.fullmatch(value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:  # an unbalanced or invalid [IPv6] host
        parts = None
    if not (parts and parts.scheme in ("http", "https") and parts.netloc and not any(c.isspace() for c in value)):
        return "Member must be empty, a Lambda function ARN, an http(s) URL or a parley: URI"
    if allowed_networks is None:
        return None
    refusal = address_policy.url_refusal(value, allowed_networks)
    return None if refusal is None else f"Member must be a URL the reviewer may call: {refusal}"


def check_review_handler_uri(value: str, allowed_networks: str) -> None:
    """CreateRoom/UpdateRoom: raise ``ValidationException`` on ``messageReviewHandler.uri`` when
    the reviewer would refuse to call it (``allowed_networks``: Settings.review_allowed_networks)."""
    problem = check_review_uri(value, address_policy.parse_networks(allowed_networks))
    if problem is not None:
        raise ValidationException.field("messageReviewHandler.uri", problem)


# parley extensions to IVS enums (boto3 does not check enums client-side, so it sends them as is).
EXTRA_ENUM_VALUES: dict[str, tuple[str, ...]] = {
    "ChatTokenCapability": EXTENSION_CAPABILITIES,  # SEND_EVENT: client events over the socket
}

SHAPE_CHECKS: dict[str, Callable[[str], str | None]] = {
    "ResourceArn": _check_resource_arn,
    "LambdaArn": check_review_uri,
}


# --- the model walk -----------------------------------------------------------------------------


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _check_size(shape: Shape, size: int, what: str, path: str, errors: FieldErrors) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        errors.append((path, f"Member must have {what} greater than or equal to {low}"))
    if high is not None and size > high:
        errors.append((path, f"Member must have {what} less than or equal to {high}"))


def _check_string(shape: Shape, value: str, path: str, errors: FieldErrors) -> None:
    if not is_encodable(value):  # a lone surrogate: refused first, or a later encode would be a 500
        errors.append((path, f"Member {UNPAIRED_SURROGATE}"))
        return
    _check_size(shape, len(value), "length", path, errors)
    custom = SHAPE_CHECKS.get(shape.name)
    if custom is not None:
        problem = custom(value)
        if problem:
            errors.append((path, problem))
    elif "pattern" in shape.metadata and re.fullmatch(shape.metadata["pattern"], value) is None:
        errors.append((path, f"Member must satisfy regular expression pattern: {shape.metadata['pattern']}"))
    if shape.enum and value not in shape.enum and value not in EXTRA_ENUM_VALUES.get(shape.name, ()):
        errors.append((path, f"Member must satisfy enum value set: [{', '.join(shape.enum)}]"))


def _check_structure(shape: Any, value: dict[str, Any], path: str, errors: FieldErrors) -> None:
    for name in shape.required_members:
        if value.get(name) is None:
            errors.append((_join(path, name), "Member must not be null"))
    if shape.is_tagged_union:
        given = [name for name in shape.members if value.get(name) is not None]
        if len(given) != 1:
            errors.append((path, f"Member must set exactly one of: {', '.join(shape.members)}"))
    for name, member in shape.members.items():
        if value.get(name) is not None:  # JSON null means absent
            check_value(member, value[name], _join(path, name), errors)


def check_value(shape: Any, value: Any, path: str, errors: FieldErrors) -> None:
    """Append ``(field, message)`` for every way ``value`` violates ``shape``."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            errors.append((path or "body", "Member must be an object"))
            return
        _check_structure(shape, value, path, errors)
    elif kind == "list":
        if not isinstance(value, list):
            errors.append((path, "Member must be a list"))
            return
        _check_size(shape, len(value), "length", path, errors)
        for index, item in enumerate(value):
            check_value(shape.member, item, f"{path}[{index}]", errors)
    elif kind == "map":
        if not isinstance(value, dict):
            errors.append((path, "Member must be a map"))
            return
        _check_size(shape, len(value), "length", path, errors)
        # Keys of sensitive maps (chat-token attributes) must not appear in error messages.
        sensitive = shape.metadata.get("sensitive", False)
        for key, item in value.items():
            check_value(shape.key, key, f"{path} key", errors)
            # A key that cannot be encoded cannot be named in the (UTF-8) error body either.
            named = not sensitive and is_encodable(key)
            check_value(shape.value, item, _join(path, key) if named else path, errors)
    elif kind == "string":
        if not isinstance(value, str):
            errors.append((path, "Member must be a string"))
            return
        _check_string(shape, value, path, errors)
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append((path, "Member must be an integer"))
            return
        _check_size(shape, value, "value", path, errors)
    elif kind == "boolean":
        if not isinstance(value, bool):
            errors.append((path, "Member must be a boolean"))
    elif kind == "timestamp" and (isinstance(value, bool) or not isinstance(value, str | int | float)):
        errors.append((path, "Member must be a timestamp"))


# --- rules the model cannot express -------------------------------------------------------------


def _attributes_limit(params: dict[str, Any]) -> FieldErrors:
    attributes = params.get("attributes")
    if isinstance(attributes, dict) and attributes_size(attributes) > MAX_ATTRIBUTES_BYTES:
        return [("attributes", f"Member must be at most {MAX_ATTRIBUTES_BYTES} bytes in total (UTF-8 keys and values)")]
    return []


def _reserved_tag_keys(params: dict[str, Any]) -> FieldErrors:
    keys = params.get("tags") or params.get("tagKeys") or []
    field = "tags" if "tags" in params else "tagKeys"
    if any(isinstance(key, str) and key.lower().startswith(RESERVED_TAG_PREFIX) for key in keys):
        return [(field, f"Tag keys must not start with the reserved prefix '{RESERVED_TAG_PREFIX}'")]
    return []


def _distinct_logging_configurations(params: dict[str, Any]) -> FieldErrors:
    identifiers = params.get("loggingConfigurationIdentifiers") or []
    if len(set(identifiers)) != len(identifiers):
        return [("loggingConfigurationIdentifiers", "Member must not contain duplicates")]
    return []


OPERATION_RULES: dict[str, list[Callable[[dict[str, Any]], FieldErrors]]] = {
    "CreateChatToken": [_attributes_limit],
    "SendEvent": [_attributes_limit],
    "CreateRoom": [_reserved_tag_keys, _distinct_logging_configurations],
    "UpdateRoom": [_distinct_logging_configurations],
    "CreateLoggingConfiguration": [_reserved_tag_keys],
    "TagResource": [_reserved_tag_keys],
    "UntagResource": [_reserved_tag_keys],
}


def validate(operation: str, params: dict[str, Any]) -> None:
    """Raise ``ValidationException`` listing every problem of ``params`` for ``operation``."""
    errors: FieldErrors = []
    check_value(operation_model(operation).input_shape, params, "", errors)
    if not errors and has_unencodable(params):  # only unknown members are left unchecked by the walk
        errors.append(("body", f"The request body {UNPAIRED_SURROGATE}"))
    if not errors:  # the extra rules assume well-typed input
        for rule in OPERATION_RULES.get(operation, ()):
            errors.extend(rule(params))
    if errors:
        raise ValidationException.for_fields(errors)
