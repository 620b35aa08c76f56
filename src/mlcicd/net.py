"""Network addresses: the one answer to "does this address stay on this machine?"."""

from __future__ import annotations

import ipaddress


def host_of(address: str) -> str:
    """The host of ``host``, ``host:port``, ``[v6]:port``, a bare IPv6 address, or an image
    registry with a namespace (``host:port/ns``)."""
    host = address.split("/", 1)[0]
    if host.startswith("["):
        return host[1 : host.find("]")]
    # One colon separates a port; more are a bare IPv6 address (``::1``).
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(address: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1``, with or without brackets, port and namespace."""
    host = host_of(address)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
