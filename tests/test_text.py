"""shared/protocol/text.py: the one check for strings a UTF-8 encoder refuses (lone surrogates)."""

import json

from shared.protocol.text import has_unencodable, is_encodable


def test_lone_surrogates_are_not_encodable() -> None:
    assert is_encodable("plain") and is_encodable("héllo 😀")
    assert not is_encodable("\ud800") and not is_encodable("a\udfffb")
    assert is_encodable(json.loads('"\\ud83d\\ude00"'))  # a pair decodes to one code point


def test_decoded_json_is_walked_keys_and_values() -> None:
    assert not has_unencodable(json.loads('{"a": ["b", {"c": "d"}], "n": 1, "t": true, "z": null}'))
    assert has_unencodable(json.loads('{"a": ["b", {"c": "\\ud800"}]}'))
    assert has_unencodable(json.loads('{"\\udc00": "v"}'))
    assert has_unencodable(json.loads(b'{"k": "\xed\xa0\x80"}'))  # bytes: json.loads uses surrogatepass


def test_deep_nesting_does_not_exhaust_the_stack() -> None:
    value: object = "\ud800"
    for _ in range(100_000):
        value = [value]
    assert has_unencodable(value)
