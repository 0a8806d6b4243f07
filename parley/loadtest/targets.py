"""The load test's safety catch: it loads loopback addresses only, unless told otherwise.

Owns: resolving the api and gateway hosts and refusing any non-loopback address without
``--allow-remote``, before a single connection is opened."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


def check_targets(urls: list[str], allow_remote: bool) -> None:
    """Refuse anything but loopback addresses unless explicitly allowed."""
    if allow_remote:
        return
    for url in urls:
        host = urlsplit(url).hostname
        if not host:
            raise SystemExit(f"parley loadtest: no host in {url!r}")
        try:
            infos = socket.getaddrinfo(host, None)
        except socket.gaierror as exc:
            raise SystemExit(f"parley loadtest: cannot resolve {host!r}: {exc}") from exc
        for info in infos:
            host_address = str(info[4][0])  # a str for the AF_INET/AF_INET6 results a host name gets
            address = ipaddress.ip_address(host_address.split("%", 1)[0])
            if not address.is_loopback:
                raise SystemExit(
                    f"parley loadtest: {url} resolves to {address}, not loopback; pass --allow-remote to load it"
                )
