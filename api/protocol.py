"""REST-JSON request decoding: HTTP request parts → an operation's input members.

Members come from where the botocore model says: the JSON body by default, the URI
(``location: uri``) or the query string (``location: querystring``). URI members are taken from
the *raw* path and unquoted here, because boto3 percent-encodes ``/`` in ARNs as ``%2F`` and a
router that decodes first would split on it.

Percent-encoded bytes that are not UTF-8 are decoded with ``surrogateescape``, into the same kind
of string a JSON ``"\\udc80"`` escape gives, so validation refuses both alike, naming the member
(the default, ``replace``, would silently turn them into U+FFFD).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, unquote

from botocore.model import OperationModel

from api.errors import OTHER, ValidationException


def _uri_template_regex(request_uri: str) -> re.Pattern[str]:
    """``/tags/{resourceArn}`` → a regex capturing each label from a raw (encoded) path."""
    pattern = ""
    for literal, label in re.findall(r"([^{]*)(?:\{([^}]+)\})?", request_uri):
        pattern += re.escape(literal)
        if label:
            greedy = label.endswith("+")
            pattern += f"(?P<{label.rstrip('+')}>{'.+' if greedy else '[^/]+'})"
    return re.compile(pattern)


def decode_json_body(data: bytes) -> dict[str, Any]:
    if not data.strip():
        return {}  # boto3 sends "{}", but an empty body means the same
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise ValidationException("The request body is not valid JSON", OTHER) from None
    if not isinstance(value, dict):
        raise ValidationException("The request body must be a JSON object", OTHER)
    return value


def decode(operation: OperationModel, raw_path: str, body: bytes) -> dict[str, Any]:
    """The operation's input members, not yet validated."""
    path, _, query = raw_path.partition("?")
    shape = operation.input_shape
    params: dict[str, Any] = {}
    members = shape.members if shape is not None else {}
    if any(member.serialization.get("location") is None for member in members.values()):
        params.update(decode_json_body(body))

    uri = _uri_template_regex(operation.http["requestUri"].split("?")[0]).fullmatch(path)
    query_pairs = parse_qsl(query, keep_blank_values=True, errors="surrogateescape")
    for name, member in members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "uri" and uri is not None:
            params[name] = unquote(uri[wire_name], errors="surrogateescape")
        elif location == "querystring":
            values = [value for key, value in query_pairs if key == wire_name]
            if member.type_name == "list":
                if values:
                    params[name] = values
            elif values:
                params[name] = values[0]
    return params
