"""Where a room's review handler may be (against server-side request forgery). Pure: no DNS, no sockets.

Anyone with API keys picks a room's ``messageReviewHandler.uri``, and the reviewer then POSTs
to it from inside the operator's network. So every address falls in one of three kinds:

- FORBIDDEN, never called whatever the settings: link-local and cloud metadata services
  (169.254.0.0/16, fe80::/10, fd00:ec2::/32, 100.100.100.200, 192.0.0.192), "this network"
  (0.0.0.0/8, ::), multicast, reserved (240.0.0.0/4, which holds the broadcast address).
- RESTRICTED, called only inside a network the operator lists (``PARLEY_REVIEW_ALLOWED_NETWORKS``,
  CIDRs): loopback, private (RFC 1918, fc00::/7), shared CGNAT space (100.64.0.0/10) and every
  other non-global special-purpose range.
- PUBLIC: the rest.

IPv6 forms that reach an IPv4 address (mapped ``::ffff:a.b.c.d``, translated, compatible) are
judged as that IPv4 address, and so are NAT64 ones (64:ff9b::/96, kind only); 6to4 and Teredo
addresses by the stricter of themselves and the IPv4 address they embed.

Hosts are judged as aiohttp will use them (yarl's ``raw_host``). Numeric hosts must be canonical
dotted quads: ``2852039166``, ``0x7f.1``, ``0177.0.0.1`` or ``127.1`` mean an address to
``getaddrinfo`` but not to a reader. IPv6 zone ids are refused (they only make sense for
link-local addresses). Names are judged after resolution (see ``reviewer.webhook``), except
``localhost``, which is loopback by definition (RFC 6761).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from yarl import URL

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
Networks = Sequence[Network]

SETTING = "PARLEY_REVIEW_ALLOWED_NETWORKS"
LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"  # what `parley dev` allows unless told otherwise


class Kind(enum.Enum):
    PUBLIC = 0
    RESTRICTED = 1
    FORBIDDEN = 2


# First match wins, so a metadata address inside a restricted range (Alibaba's in 100.64.0.0/10,
# AWS's IPv6 IMDS in fc00::/7) stays forbidden even when an operator allows the whole range.
_FORBIDDEN: tuple[tuple[Network, str], ...] = tuple(
    (ip_network(cidr), label)
    for cidr, label in (
        ("0.0.0.0/8", "'this network'"),
        ("169.254.0.0/16", "link-local (cloud metadata)"),
        ("100.100.100.200/32", "cloud metadata"),  # Alibaba Cloud
        ("192.0.0.192/32", "cloud metadata"),  # Oracle Cloud
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # includes the broadcast address 255.255.255.255
        ("::/128", "unspecified"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),  # deprecated, but still link-scoped where it works
        ("ff00::/8", "multicast"),
        ("fd00:ec2::/32", "cloud metadata"),  # AWS: IMDS fd00:ec2::254, DNS ::253, NTP ::123
    )
)
_RESTRICTED: tuple[tuple[Network, str], ...] = tuple(
    (ip_network(cidr), label)
    for cidr, label in (
        ("127.0.0.0/8", "loopback"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("100.64.0.0/10", "shared (CGNAT)"),
        ("::1/128", "loopback"),
        ("fc00::/7", "unique-local"),
        ("64:ff9b:1::/48", "local-use NAT64"),  # translates to whatever the local gateway says
    )
)
_NAT64 = ip_network("64:ff9b::/96")
_TRANSLATED = ip_network("::ffff:0:0:0/96")  # RFC 2765 IPv4-translated
_COMPATIBLE = ip_network("::/96")  # deprecated IPv4-compatible (besides :: and ::1)
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"  # LDH, plus "_" (seen in internal names)
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\.?$){_LABEL}(?:\.{_LABEL})*\.?")


@lru_cache(maxsize=16)
def parse_networks(raw: str) -> tuple[Network, ...]:
    """``"127.0.0.0/8, 10.0.0.0/8"`` (commas, optional spaces; a bare address is a /32 or /128).
    Raises ``ValueError`` naming the bad entry: a typo must stop startup, not widen or narrow access."""
    networks: list[Network] = []
    for entry in raw.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ip_network(entry))  # strict: 10.0.0.1/8 is refused, not silently widened
        except ValueError as exc:
            raise ValueError(f"{SETTING}: {entry!r} is not a CIDR network ({exc})") from None
    return tuple(networks)


def _lookup(address: Address, table: tuple[tuple[Network, str], ...]) -> str | None:
    return next((label for network, label in table if address in network), None)


def _classify_plain(address: Address) -> tuple[Kind, str]:
    label = _lookup(address, _FORBIDDEN)
    if label is not None:
        return Kind.FORBIDDEN, label
    label = _lookup(address, _RESTRICTED)
    if label is not None:
        return Kind.RESTRICTED, label
    if address.is_reserved:
        return Kind.FORBIDDEN, "reserved"
    if not address.is_global:
        return Kind.RESTRICTED, "special-purpose"  # documentation, benchmarking, Teredo, …
    return Kind.PUBLIC, "public"


def effective_address(address: Address) -> Address:
    """The address a connection really goes to: the IPv4 address behind a mapped, translated or
    compatible IPv6 form (the kernel sends ``::ffff:127.0.0.1`` to 127.0.0.1); else itself."""
    if isinstance(address, IPv6Address) and address.scope_id is None:
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _TRANSLATED or (address in _COMPATIBLE and int(address) > 1):
            return IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _embedded(address: IPv6Address) -> list[IPv4Address]:
    """IPv4 destinations a gateway may translate this IPv6 address to (6to4, Teredo's client)."""
    found: list[IPv4Address] = []
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.append(address.teredo[1])
    return found


def classify(address: Address) -> tuple[Kind, str]:
    """The address's kind and a label for messages (``"link-local (cloud metadata)"``, …)."""
    address = effective_address(address)
    if isinstance(address, IPv6Address) and address in _NAT64:
        # DNS64 hands these out for every IPv4-only name on an IPv6-only network: judge the
        # IPv4 address behind it (64:ff9b::/96 itself sits in IPv6's reserved ::/8).
        kind, label = _classify_plain(IPv4Address(int(address) & 0xFFFFFFFF))
        return kind, label if kind is Kind.PUBLIC else f"{label} (via NAT64)"
    kind, label = _classify_plain(address)
    if isinstance(address, IPv6Address):
        for inner in _embedded(address):
            inner_kind, inner_label = _classify_plain(inner)
            if inner_kind.value > kind.value:
                kind, label = inner_kind, f"{inner_label} (embedded in IPv6)"
    return kind, label


def address_refusal(address: Address, allowed: Networks) -> str | None:
    """Why a handler may not be called at ``address`` (a phrase for messages, without the
    address itself); None when it may."""
    kind, label = classify(address)
    if kind is Kind.FORBIDDEN:
        return f"host address is {label}, which is never allowed"
    if kind is Kind.RESTRICTED:
        target = effective_address(address)
        if not any(target in network for network in allowed):
            return f"host address is {label}, not in {SETTING}"
    return None


def resolved_refusal(host: str, allowed: Networks) -> str | None:
    """Judge one numeric answer of a resolver (it may carry a ``%zone``: link-local, refused)."""
    try:
        address = ip_address(host)
    except ValueError:
        return "resolved to something that is not an IP address"
    if isinstance(address, IPv6Address) and address.scope_id is not None:
        return "resolved to an IPv6 address with a zone id"
    return address_refusal(address, allowed)


def literal_address(host: str) -> Address | None:
    """The IP address a URL host (yarl ``raw_host``, IPv6 without brackets) spells, None for a
    name. Raises ``ValueError`` for spellings that must not be guessed at (see module doc)."""
    if ":" in host:
        if "%" in host:
            raise ValueError("host has an IPv6 zone id")
        try:
            return IPv6Address(host)
        except ValueError:
            raise ValueError("host is not a valid IPv6 address") from None
    labels = host.split(".")
    # Like the WHATWG URL parser: a host whose last label is a number is meant as an IPv4 address.
    last = labels[-1] if labels[-1] or len(labels) == 1 else labels[-2]
    if _NUMERIC_LABEL.fullmatch(last):
        try:
            address = IPv4Address(host)  # strict: four decimal octets, no leading zeros
        except ValueError:
            raise ValueError("host is not a canonical dotted-quad IPv4 address") from None
        return address
    return None


def host_refusal(host: str, allowed: Networks) -> str | None:
    """Why a handler may not be called at this URL host, as far as it can be told without DNS.

    A literal address is judged in full; a name is checked for shape only (the reviewer judges
    the addresses it resolves to, at call time) - except ``localhost``, which is loopback.
    """
    if not host:
        return "URL has no host"
    try:
        address = literal_address(host)
    except ValueError as exc:
        return str(exc)
    if address is not None:
        return address_refusal(address, allowed)
    if not _HOSTNAME.fullmatch(host):
        return "host is not a valid hostname"
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        if not any(IPv4Address("127.0.0.1") in n or IPv6Address("::1") in n for n in allowed):
            return f"host is a loopback name, not in {SETTING}"
    return None


def url_refusal(uri: str, allowed: Networks) -> str | None:
    """Why a handler may not be called at this http(s) URL (parsed as aiohttp will, so a reader
    and the client never disagree on the host); None when it may, pending DNS."""
    try:
        url = URL(uri)
        host, scheme, _port = url.raw_host, url.scheme, url.port  # .port validates the port
    except (ValueError, TypeError, IndexError):  # yarl raises IndexError on some broken authorities
        return "not a valid URL"
    if scheme not in ("http", "https"):
        return "not an http(s) URL"
    return host_refusal(host or "", allowed)
