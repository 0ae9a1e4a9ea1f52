"""permessage-deflate (RFC 7692), no I/O: negotiation, inflating client messages, deflating
server messages.

The server always answers with `server_no_context_takeover`: each server message is
deflated on its own, so one broadcast deflates once for every peer instead of once per peer
(and a connection holds no compressor). Client messages may use context takeover; each
connection keeps one inflater for them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from collab.errors import PolicyViolation, ProtocolError

# The empty stored block a sender strips from the end of each deflated message (7.2.1).
_TAIL = b"\x00\x00\xff\xff"
DEFAULT_WINDOW_BITS = 15
# zlib cannot deflate with an 8-bit window (it silently uses 9), so an offer that insists on
# one is declined rather than answered with a window the server would not keep to.
MIN_WINDOW_BITS = 9


@dataclass(frozen=True, slots=True)
class DeflateAgreement:
    """What the server answered to a client's permessage-deflate offer."""

    server_window_bits: int
    client_no_context_takeover: bool

    def response_header(self) -> str:
        parts = ["permessage-deflate", "server_no_context_takeover"]
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_window_bits != DEFAULT_WINDOW_BITS:
            parts.append(f"server_max_window_bits={self.server_window_bits}")
        return "; ".join(parts)


def negotiate(offers_header: str | None) -> DeflateAgreement | None:
    """The first acceptable permessage-deflate offer in a `Sec-WebSocket-Extensions` header,
    or None (the connection then runs uncompressed). An offer with unknown, repeated or
    malformed parameters is declined, as 7.1 asks."""
    if not offers_header:
        return None
    for offer in offers_header.split(","):
        name, *raw_params = (part.strip() for part in offer.split(";"))
        if name.lower() != "permessage-deflate":
            continue
        agreement = _accept(raw_params)
        if agreement is not None:
            return agreement
    return None


def _accept(raw_params: list[str]) -> DeflateAgreement | None:
    seen: set[str] = set()
    server_bits = DEFAULT_WINDOW_BITS
    client_no_takeover = False
    for raw in raw_params:
        key, has_value, value = (part.strip() for part in raw.partition("="))
        key = key.lower()
        value = value.strip('"')
        if key in seen:
            return None
        seen.add(key)
        if key == "server_no_context_takeover" and not has_value:
            continue
        if key == "client_no_context_takeover" and not has_value:
            client_no_takeover = True
        elif key == "server_max_window_bits" and has_value:
            bits = _window_bits(value)
            if bits is None or bits < MIN_WINDOW_BITS:
                return None
            server_bits = bits
        elif key == "client_max_window_bits":
            # A hint that the client can take a smaller window; the server inflates with the
            # largest, which reads any.
            if has_value and _window_bits(value) is None:
                return None
        else:
            return None
    return DeflateAgreement(server_bits, client_no_takeover)


class Inflater:
    """One connection's decompressor for the messages its client deflated."""

    __slots__ = ("_inflate",)

    def __init__(self) -> None:
        # Context kept across messages whatever was agreed: a client that resets its own
        # context still sends streams this reads.
        self._inflate = zlib.decompressobj(-DEFAULT_WINDOW_BITS)

    def inflate(self, payload: bytes, max_bytes: int) -> bytes:
        """The inflated message, or raise `InflateError`; `MessageTooLarge` when it would be
        larger than `max_bytes` (found without inflating more than that)."""
        try:
            inflated = self._inflate.decompress(payload + _TAIL, max_bytes + 1)
        except zlib.error as error:
            raise InflateError(f"message does not inflate: {error}") from None
        if len(inflated) > max_bytes or self._inflate.unconsumed_tail:
            raise MessageTooLarge(max_bytes)
        return inflated


class InflateError(ProtocolError):
    """A deflated message that does not inflate (the connection closes with 1007)."""


class MessageTooLarge(PolicyViolation):
    """A deflated message that inflates beyond the limit (the connection closes with 1009)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"message larger than {max_bytes} bytes")


def deflate_message(payload: bytes, window_bits: int) -> bytes:
    """`payload` deflated on its own (no context kept), its final empty block stripped."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -window_bits)
    deflated = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return deflated[: -len(_TAIL)] if deflated.endswith(_TAIL) else deflated


def _window_bits(value: str) -> int | None:
    """`value` as a window size RFC 7692 allows (8 to 15), else None (`str.isdigit` alone
    admits "²", which `int` refuses)."""
    if not (0 < len(value) <= 2 and value.isascii() and value.isdigit()):
        return None
    bits = int(value)
    return bits if 8 <= bits <= DEFAULT_WINDOW_BITS else None
