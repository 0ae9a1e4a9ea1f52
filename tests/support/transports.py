"""A stand-in for an asyncio transport that records what is written to it, for unit tests of
the code that writes to sockets (`ServerWebSocket`, `Liveness`)."""

from __future__ import annotations


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
