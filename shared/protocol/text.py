"""Text that can cross the wire: strings free of unpaired UTF-16 surrogates.

JSON lets a client write a lone surrogate as an escape (``"\\ud800"``), and Python's ``json``
decodes it (and, from bytes, even a CESU-8 encoded one) into a ``str`` that no UTF-8 encoder
accepts. Such a string must be refused where input is parsed, before any component stores,
encodes or logs it; these checks are that one step, shared by the control plane and the gateway.

Pure functions only.
"""

from __future__ import annotations

from typing import Any

UNPAIRED_SURROGATE = "must be valid Unicode text (no unpaired UTF-16 surrogates)"


def is_encodable(value: str) -> bool:
    """True if ``value`` encodes to UTF-8, i.e. holds no unpaired surrogate."""
    if value.isascii():  # the common case, without building a bytes copy
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def has_unencodable(value: Any) -> bool:
    """True if any string in a decoded JSON value (keys included) holds an unpaired surrogate.

    Iterative, so a value nested as deep as ``json.loads`` allows cannot exhaust the stack.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not is_encodable(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
