"""Which webhook URLs and addresses the server may call (pure: no I/O).

- `https://` to public addresses;
- `http://` only to loopback addresses: a receiver on the operator's own machine, for
  development;
- private, loopback (over https), link-local, multicast, unspecified, reserved and other
  non-public addresses refused unless `allow_private` (`COLLAB_WEBHOOK_ALLOW_PRIVATE=1`).
  An address that embeds an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, 6to4, NAT64) is
  judged by the address it embeds.

The check applies to every address a host name resolves to, at registration and at every
delivery (`client.py`), and the connection goes to the address checked.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from yarl import URL

from collab.errors import CollabError

MAX_URL_CHARS = 2048
SCHEMES = ("https", "http")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Ranges of IANA's special-purpose registries that are not globally reachable but that
# Python 3.11's `ipaddress` counts as global (later versions list some of them).
_NOT_GLOBAL: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.IPv4Network("192.0.0.0/24"), "an IETF protocol assignment address"),
    (ipaddress.IPv6Network("fec0::/10"), "a site-local address"),
    (ipaddress.IPv6Network("3fff::/20"), "a documentation address"),
)
_NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?", re.IGNORECASE)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(CollabError):
    """A webhook URL, or an address its host resolves to, that the server does not call."""


@dataclass(frozen=True, slots=True)
class WebhookUrl:
    url: str
    """As given (it is what the request goes to)."""
    scheme: str
    host: str
    """The host as resolved: IDNA-encoded, an IP address without brackets."""
    port: int
    address: IPAddress | None
    """The host when it is an IP address."""


def parse_url(raw: object) -> WebhookUrl:
    """`raw` as a webhook URL; raise `UnsafeUrl` saying what is wrong with it (the address
    checks aside: `refusal`)."""
    if not isinstance(raw, str) or not raw:
        raise UnsafeUrl("the url must be a non-empty string")
    if len(raw) > MAX_URL_CHARS:
        raise UnsafeUrl(f"the url is longer than {MAX_URL_CHARS} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in raw):
        raise UnsafeUrl("the url must not contain spaces or control characters")
    try:
        url = URL(raw)
        port = url.port
    except (ValueError, TypeError) as exc:
        raise UnsafeUrl(f"the url does not parse: {exc}") from None
    if url.scheme not in SCHEMES:
        raise UnsafeUrl("the url must be https:// (or http:// to a loopback address)")
    host = url.raw_host
    if not host or port is None:
        raise UnsafeUrl("the url must name a host")
    if url.raw_user is not None or url.raw_password is not None:
        raise UnsafeUrl("the url must not carry a user name or password")
    if url.raw_fragment:
        raise UnsafeUrl("the url must not have a #fragment")
    address = _address(host)
    if address is None and _NUMERIC_HOST.fullmatch(host):
        raise UnsafeUrl(f"write IP addresses in their usual form, not {host!r}")
    if address is None and not _is_dns_name(host):
        raise UnsafeUrl(
            f"the url's host {host[:80]!r} is no DNS name: labels of 1 to 63 characters, 253 in all"
        )
    return WebhookUrl(raw, url.scheme, host, port, address)


def _is_dns_name(host: str) -> bool:
    """Whether `host` (IDNA-encoded, as yarl gives it) fits DNS: the resolver refuses others
    with an error of its own (UnicodeError, not OSError)."""
    name = host.removesuffix(".")
    return 0 < len(name) <= 253 and all(0 < len(label) <= 63 for label in name.split("."))


def refusal(address: str, *, scheme: str, allow_private: bool) -> str | None:
    """Why a request over `scheme` may not go to `address` (None: it may)."""
    ip = _address(address)
    if ip is None:
        return f"{address!r} is not an IP address"
    kind = kind_of(ip)
    if scheme == "http":
        if kind == "a loopback address":
            return None
        return f"{address} is not a loopback address: http:// is only for those; use https://"
    if kind is None or allow_private:
        return None
    return f"{address} is {kind} (COLLAB_WEBHOOK_ALLOW_PRIVATE=1 allows it)"


def kind_of(ip: IPAddress) -> str | None:
    """What kind of non-public address `ip` is; None for a public one."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        kind = kind_of(embedded)
        return None if kind is None else f"{kind} ({embedded}, embedded in an IPv6 address)"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "not a public address"
    for network, kind in _NOT_GLOBAL:
        if ip.version == network.version and ip in network:
            return kind
    return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
