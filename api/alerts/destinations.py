"""Where a webhook may point: public addresses, and the networks ``TAKT_ALERT_WEBHOOK_ALLOW_NETWORKS`` names.

A rule's webhook URL is chosen by a supervisor, and the API sends to it from
inside the plant's network, so without a guard a rule could make the API
POST to the database host, a cloud metadata endpoint (169.254.169.254) or
anything else only the API can reach (server-side request forgery). The
guard refuses loopback, private, link-local, multicast and reserved
addresses unless an allowed network holds them:

- when a rule is saved, for a literal address or a name that resolves now
  (a name that does not resolve yet is checked at delivery);
- at each delivery, for every address the name resolves to; the request then
  goes to the addresses that were checked, in the resolver's order (with the name in ``Host`` and in TLS
  SNI, so certificates are still verified against the name), so a name that
  resolves differently a moment later (DNS rebinding) cannot redirect it.
Redirects are never followed (the sender's HTTP client), so a public
receiver cannot bounce a POST inward either.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

import httpx

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


class ForbiddenDestination(ValueError):
    """The webhook points where the API must not send."""


def _kind(address: Address) -> str | None:
    """What makes an address non-public, or None for a public one."""
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved"
    return None


def refusal(address: Address, allowed: Sequence[Network]) -> str | None:
    """Why the API must not send to ``address``, or None where it may."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address.version == net.version and address in net for net in allowed):
        return None
    kind = _kind(address)
    if kind is None:
        return None
    return (
        f"{address} is a {kind} address; webhooks reach only public addresses unless "
        "TAKT_ALERT_WEBHOOK_ALLOW_NETWORKS names its network"
    )


def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` stands for (itself, for a literal address)."""
    try:
        return [ip_address(host)]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # The scope suffix of an IPv6 link-local address (fe80::1%eth0) is not part of the address.
    return list(dict.fromkeys(ip_address(str(info[4][0]).split("%")[0]) for info in infos))


def check(host: str, addresses: Sequence[Address], allowed: Sequence[Network]) -> None:
    """Raise :class:`ForbiddenDestination` if any address of ``host`` is refused."""
    if not addresses:
        raise ForbiddenDestination(f"webhook host {host} has no address")
    for address in addresses:
        reason = refusal(address, allowed)
        if reason is not None:
            shown = host if host == str(address) else f"{host} ({address})"
            raise ForbiddenDestination(f"webhook host {shown}: {reason}")


def check_saved(url: str, allowed: Sequence[Network]) -> None:
    """The check when a rule is saved: a name that does not resolve yet passes (delivery checks it)."""
    target = httpx.URL(url)
    try:
        addresses = resolve(target.host, target.port or (443 if target.scheme == "https" else 80))
    except OSError:
        return
    check(target.host, addresses, allowed)


@dataclass(frozen=True, slots=True)
class Pinned:
    """A request to the checked address of a webhook URL."""

    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, str]


def pin(url: str, allowed: Sequence[Network]) -> list[Pinned]:
    """Resolve and check ``url``'s host: one request per checked address, to be tried in order."""
    target = httpx.URL(url)
    host = target.host
    try:
        addresses = resolve(host, target.port or (443 if target.scheme == "https" else 80))
    except OSError as exc:
        raise ConnectionError(f"webhook host {host} does not resolve: {exc}") from exc
    check(host, addresses, allowed)
    if str(addresses[0]) == host:
        return [Pinned(target, {}, {})]
    headers = {"Host": target.netloc.decode("ascii")}
    extensions = {"sni_hostname": host} if target.scheme == "https" else {}
    return [Pinned(target.copy_with(host=str(address)), headers, extensions) for address in addresses]
