"""Which webhook URLs parse, and which addresses a webhook may go to over each scheme."""

from __future__ import annotations

import pytest

from collab.delivery.addresses import UnsafeUrl, parse_url, refusal

PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"]
NOT_PUBLIC = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("fd00::1", "private"),
    ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("224.0.0.251", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("240.0.0.1", "reserved"),
    ("100.64.0.1", "not a public address"),
    # Not globally reachable, though Python 3.11 counts them as global.
    ("192.0.0.8", "IETF protocol assignment"),
    ("fec0::1", "site-local"),
    ("fec0::a:b", "site-local"),
    ("3fff::1", "documentation"),
    ("5f00::1", "reserved"),  # SRv6
    ("::ffff:127.0.0.1", "loopback address (127.0.0.1, embedded"),
    ("::ffff:10.0.0.1", "private address (10.0.0.1, embedded"),
    ("2002:7f00:1::", "loopback address (127.0.0.1, embedded"),
    ("64:ff9b::a9fe:a9fe", "link-local address (169.254.169.254, embedded"),
]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed_over_https(address: str) -> None:
    """A public address may be called over https, with or without the private switch."""
    assert refusal(address, scheme="https", allow_private=False) is None
    assert refusal(address, scheme="https", allow_private=True) is None


@pytest.mark.parametrize(("address", "kind"), NOT_PUBLIC)
def test_non_public_addresses_are_refused_over_https_unless_allowed(
    address: str, kind: str
) -> None:
    """Each non-public address is refused over https, naming its kind and the setting that
    allows it; COLLAB_WEBHOOK_ALLOW_PRIVATE allows it."""
    reason = refusal(address, scheme="https", allow_private=False)
    assert reason is not None
    assert kind in reason
    assert "COLLAB_WEBHOOK_ALLOW_PRIVATE" in reason
    assert refusal(address, scheme="https", allow_private=True) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1"])
def test_http_goes_to_loopback_addresses(address: str) -> None:
    """Plain http reaches a loopback address (a receiver for development)."""
    assert refusal(address, scheme="http", allow_private=False) is None


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1", "fe80::1"]
)
def test_http_goes_nowhere_else_even_when_private_is_allowed(address: str) -> None:
    """Plain http to any other address is refused, whatever the private switch says."""
    for allow_private in (False, True):
        reason = refusal(address, scheme="http", allow_private=allow_private)
        assert reason is not None
        assert "use https://" in reason


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (None, "non-empty string"),
        ("", "non-empty string"),
        (7, "non-empty string"),
        ("https://" + "a" * 2050 + ".com/", "longer than 2048"),
        ("https://hooks.example.com/a b", "spaces or control"),
        ("https://hooks.example.com/\n", "spaces or control"),
        ("ftp://hooks.example.com/", "must be https://"),
        ("hooks.example.com/in", "must be https://"),
        ("https:///path", "name a host"),
        ("https://user:pw@hooks.example.com/", "user name or password"),
        ("https://user@hooks.example.com/", "user name or password"),
        ("https://hooks.example.com/#frag", "#fragment"),
        ("https://hooks.example.com:99999/", "does not parse"),
        ("https://2130706433/", "usual form"),
        ("https://127.1/", "usual form"),
        ("https://0x7f.0.0.1/", "usual form"),
        # No DNS name: the resolver raised UnicodeError for these, not OSError (a 500).
        ("https://" + "a" * 64 + ".example.com/", "no DNS name"),
        ("https://hooks..example.com/", "no DNS name"),
        ("https://.com/", "no DNS name"),
        ("https://" + "a." * 127 + "com/", "no DNS name"),
    ],
)
def test_malformed_urls_are_refused_saying_why(url: object, problem: str) -> None:
    """Every malformed URL raises UnsafeUrl naming what is wrong."""
    with pytest.raises(UnsafeUrl) as raised:
        parse_url(url)
    assert problem in str(raised.value)


def test_a_url_is_parsed_into_its_parts() -> None:
    """Scheme, host (IDNA-encoded, IPv6 without brackets), default or given port, and the
    address when the host is one."""
    named = parse_url("https://Hooks.Example.com/in?x=1")
    literal = parse_url("http://[::1]:8080/in")
    idna = parse_url("https://bücher.example/")

    assert (named.scheme, named.host, named.port, named.address) == (
        "https",
        "hooks.example.com",
        443,
        None,
    )
    assert (literal.host, literal.port, str(literal.address)) == ("::1", 8080, "::1")
    assert idna.host == "xn--bcher-kva.example"
