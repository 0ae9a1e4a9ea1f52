"""Stand-ins for what the code under test writes to: an asyncio transport that records what
is written to it (`ServerWebSocket`, `Liveness`), and a peer's transport that takes every frame
and records how it was closed (the drain)."""

from __future__ import annotations

from collab.protocol.close_codes import CloseCode
from collab.protocol.websocket import OutgoingFrame


class RecordingTransport:
    """Records writes; `close` and `abort` mark it closing, and a write after that fails the
    test."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class ClosingPeerTransport:
    """A `PeerTransport` that takes every frame and records the close it was asked for."""

    def __init__(self) -> None:
        self.closed: tuple[CloseCode, str] | None = None

    def write_now(self, frame: OutgoingFrame) -> bool:
        return True

    async def drain(self) -> None:
        return None

    async def send_frame(self, frame: bytes) -> None:
        return None

    async def close(self, code: CloseCode, reason: str) -> None:
        self.closed = (code, reason)
