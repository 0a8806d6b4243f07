"""The review-handler address policy (shared/address_policy.py), without sockets or DNS:
which addresses are never called, which only when an operator lists them, and which host
spellings are refused because a reader and ``getaddrinfo`` would disagree on them."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from shared.address_policy import (
    LOOPBACK_NETWORKS,
    SETTING,
    Kind,
    classify,
    effective_address,
    host_refusal,
    parse_networks,
    resolved_refusal,
    url_refusal,
)

EVERYTHING = parse_networks("0.0.0.0/0,::/0")  # an operator allowing every network there is
LOOPBACK = parse_networks(LOOPBACK_NETWORKS)

FORBIDDEN = [
    "169.254.169.254",  # AWS / GCP / Azure / OpenStack metadata
    "169.254.170.2",  # ECS task metadata
    "169.254.0.1",
    "100.100.100.200",  # Alibaba Cloud metadata, inside 100.64.0.0/10
    "192.0.0.192",  # Oracle Cloud metadata
    "fd00:ec2::254",  # AWS IMDS over IPv6, inside fc00::/7
    "fe80::1",
    "febf:ffff::1",
    "fec0::1",
    "0.0.0.0",  # connects to this host on Linux
    "0.1.2.3",
    "::",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "240.0.0.1",
    "255.255.255.255",
    "4000::1",  # reserved IPv6 space
    # IPv6 spellings of forbidden IPv4 addresses
    "::ffff:169.254.169.254",
    "::ffff:a9fe:a9fe",
    "0:0:0:0:0:ffff:a9fe:a9fe",
    "::169.254.169.254",  # IPv4-compatible (deprecated)
    "::ffff:0:169.254.169.254",  # IPv4-translated
    "64:ff9b::169.254.169.254",  # NAT64
    "64:ff9b::a9fe:a9fe",
    "2002:a9fe:a9fe::1",  # 6to4
    "::ffff:100.100.100.200",
    "::ffff:0.0.0.0",
    "::ffff:255.255.255.255",
    "::2",
]

RESTRICTED = {
    "127.0.0.1": "loopback",
    "127.255.255.254": "loopback",
    "::1": "loopback",
    "::ffff:127.0.0.1": "loopback",
    "::127.0.0.1": "loopback",
    "10.0.0.1": "private",
    "172.16.0.1": "private",
    "172.31.255.255": "private",
    "192.168.1.1": "private",
    "::ffff:10.1.2.3": "private",
    "100.64.0.1": "shared (CGNAT)",
    "100.127.255.254": "shared (CGNAT)",
    "fc00::1": "unique-local",
    "fd12:3456::1": "unique-local",
    "64:ff9b:1::a00:1": "local-use NAT64",
    "64:ff9b::127.0.0.1": "loopback (via NAT64)",
    "2002:7f00:1::": "loopback (embedded in IPv6)",
    "192.0.2.1": "special-purpose",  # documentation
    "198.18.0.1": "special-purpose",  # benchmarking
    "2001:db8::1": "special-purpose",
}

METADATA = "host address is link-local (cloud metadata), which is never allowed"
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "64:ff9b::8.8.8.8"]


@pytest.mark.parametrize("text", FORBIDDEN)
def test_forbidden_addresses_are_refused_whatever_the_operator_allows(text: str) -> None:
    address = ip_address(text)
    assert classify(address)[0] is Kind.FORBIDDEN
    refusal = resolved_refusal(text, EVERYTHING)
    assert refusal is not None and "never allowed" in refusal
    assert text not in refusal  # messages go into API errors, which never echo values


@pytest.mark.parametrize(("text", "label"), RESTRICTED.items())
def test_loopback_and_private_addresses_need_the_operator(text: str, label: str) -> None:
    address = ip_address(text)
    assert classify(address) == (Kind.RESTRICTED, label)
    assert resolved_refusal(text, ()) == f"host address is {label}, not in {SETTING}"
    assert resolved_refusal(text, EVERYTHING) is None


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_are_allowed(text: str) -> None:
    assert classify(ip_address(text)) == (Kind.PUBLIC, "public")
    assert resolved_refusal(text, ()) is None


def test_only_the_listed_networks_are_allowed() -> None:
    allowed = parse_networks("127.0.0.0/8, 10.1.0.0/16")
    assert resolved_refusal("127.0.0.1", allowed) is None
    assert resolved_refusal("::ffff:127.0.0.1", allowed) is None  # the kernel sends it to 127.0.0.1
    assert resolved_refusal("10.1.2.3", allowed) is None
    assert resolved_refusal("10.2.0.1", allowed) is not None
    assert resolved_refusal("::1", allowed) is not None  # IPv6 loopback not listed
    assert resolved_refusal("192.168.0.1", allowed) is not None
    # A listed range does not reopen the metadata addresses inside it.
    wide = parse_networks("100.64.0.0/10,fc00::/7")
    assert resolved_refusal("100.64.0.1", wide) is None
    assert resolved_refusal("100.100.100.200", wide) is not None
    assert resolved_refusal("fd00:ec2::254", wide) is not None


def test_effective_address_unwraps_ipv4_behind_ipv6() -> None:
    assert effective_address(ip_address("::ffff:7f00:1")) == ip_address("127.0.0.1")
    assert effective_address(ip_address("::ffff:0:a9fe:a9fe")) == ip_address("169.254.169.254")
    assert effective_address(ip_address("::1")) == ip_address("::1")  # IPv6 loopback, not 0.0.0.1
    assert effective_address(ip_address("2606:4700::1111")) == ip_address("2606:4700::1111")


def test_resolver_answers_with_zone_ids_or_garbage_are_refused() -> None:
    assert resolved_refusal("fe80::1%eth0", EVERYTHING) == "resolved to an IPv6 address with a zone id"
    assert resolved_refusal("not-an-ip", EVERYTHING) == "resolved to something that is not an IP address"


@pytest.mark.parametrize(
    "host",
    [
        "2852039166",  # 169.254.169.254 as one decimal number
        "0xa9fea9fe",
        "0xA9.0xFE.0xA9.0xFE",
        "0251.0376.0251.0376",  # octal
        "169.254.43518",
        "169.16689662",
        "0x7f.1",
        "127.1",
        "0177.0.0.1",
        "127.0.0.01",
        "2130706433",
        "017700000001",
        "0",
        "0x",
        "127.0.0.1.",  # trailing dot: a name to the resolver, an address to a reader
        "1.2.3.4.5",
        "256.1.1.1",
        "example.123",
        "%31%32%37.0.0.1",
    ],
)
def test_non_canonical_numeric_hosts_are_refused(host: str) -> None:
    assert host_refusal(host, EVERYTHING) == "host is not a canonical dotted-quad IPv4 address"


@pytest.mark.parametrize("host", ["fe80::1%25eth0", "fe80::1%eth0", "::1%lo"])
def test_ipv6_zone_ids_are_refused(host: str) -> None:
    assert host_refusal(host, EVERYTHING) == "host has an IPv6 zone id"


@pytest.mark.parametrize("host", ["a..b", "-a.example", "a_b!.example", "exa mple.com", ".", "a" * 64 + ".com"])
def test_malformed_names_are_refused(host: str) -> None:
    assert host_refusal(host, EVERYTHING) == "host is not a valid hostname"


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "api.localhost"])
def test_localhost_is_loopback_by_name(host: str) -> None:
    assert host_refusal(host, ()) == f"host is a loopback name, not in {SETTING}"
    assert host_refusal(host, LOOPBACK) is None


@pytest.mark.parametrize("host", ["review.example.com", "example.com.", "xn--bcher-kva.example", "svc_1.internal"])
def test_names_wait_for_resolution(host: str) -> None:
    """A name's addresses are judged when the reviewer resolves it, not here."""
    assert host_refusal(host, ()) is None


@pytest.mark.parametrize(
    ("uri", "refusal"),
    [
        ("http://169.254.169.254/latest/meta-data/", METADATA),
        ("http://evil@169.254.169.254/", METADATA),
        ("http://user:pw@[::ffff:169.254.169.254]:80/", METADATA),
        ("http://[fd00:ec2::254]/latest/", "host address is cloud metadata, which is never allowed"),
        ("http://[fe80::1%25eth0]:8080/", "host has an IPv6 zone id"),
        ("http://2852039166/", "host is not a canonical dotted-quad IPv4 address"),
        ("http://0x7f.1/", "host is not a canonical dotted-quad IPv4 address"),
        ("http://１２７.０.０.１/", f"host address is loopback, not in {SETTING}"),  # IDNA maps it to 127.0.0.1
        ("http://127.0.0.1:9000/x", f"host address is loopback, not in {SETTING}"),
        ("https://[::1]/", f"host address is loopback, not in {SETTING}"),
        ("http://0.0.0.0:8080/", "host address is 'this network', which is never allowed"),
        ("http://10.0.0.5/review", f"host address is private, not in {SETTING}"),
        ("http://localhost:8000/", f"host is a loopback name, not in {SETTING}"),
        ("http://evil.com\\@169.254.169.254/", "not a valid URL"),  # backslash: parsers disagree on the host
        ("http://host:99999/", "not a valid URL"),
        ("http:///nohost", "URL has no host"),
        ("ftp://example.com/", "not an http(s) URL"),
        # the host is what follows the last @ before the path, nothing else
        ("http://169.254.169.254@review.example.com/", None),
        ("http://review.example.com/?next=http://169.254.169.254/", None),
        ("https://review.example.com:8443/hook?secret=s", None),
        ("http://8.8.8.8/", None),
    ],
)
def test_url_refusal_judges_the_host_the_client_will_use(uri: str, refusal: str | None) -> None:
    assert url_refusal(uri, ()) == refusal


def test_url_refusal_with_loopback_allowed() -> None:
    assert url_refusal("http://127.0.0.1:9000/x", LOOPBACK) is None
    assert url_refusal("http://[::1]:9000/x", LOOPBACK) is None
    assert url_refusal("http://[::ffff:127.0.0.1]:9000/x", LOOPBACK) is None
    assert url_refusal("http://0x7f.1:9000/", LOOPBACK) is not None  # still not a canonical spelling
    assert url_refusal("http://0.0.0.0:9000/", LOOPBACK) is not None  # reaches loopback, but never allowed


def test_parse_networks() -> None:
    assert parse_networks("") == ()
    assert parse_networks(" , ") == ()
    networks = parse_networks("127.0.0.0/8, ::1/128,10.0.0.5")
    assert [str(n) for n in networks] == ["127.0.0.0/8", "::1/128", "10.0.0.5/32"]
    for bad in ("10.0.0.1/8", "localhost", "10.0.0.0/33", "fc00::/7;"):
        with pytest.raises(ValueError, match=SETTING):
            parse_networks(bad)
