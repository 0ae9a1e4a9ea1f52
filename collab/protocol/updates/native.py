"""The C versions (`collab/protocol/_reader.c`) of the reader and checks every edit runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from collab.protocol.updates.shape import ClientRange, UpdateShape


class _Native(NamedTuple):
    read: Callable[[bytes], UpdateShape | None]
    check: Callable[[UpdateShape, dict[int, int], bool], bool | None]
    advance: Callable[[UpdateShape, dict[int, int], dict[int, list[tuple[int, int]]]], bool]


def _load_native() -> _Native | None:
    """The C versions (`_reader.c`) of what every edit runs: the reader of the common
    updates (one string or value item, or deletions alone), the check against a document's
    clocks (`admit` when nothing is missing) and `advance` (one client, values following its
    earlier ones). Each answers the common case and leaves the rest to the Python reader and
    checks, the reference. None where the package was installed without a C compiler: then Python
    does it all, with the same rules and results, several times slower."""
    try:
        from collab.protocol import _reader
    except ImportError:
        return None
    _reader.configure(UpdateShape, ClientRange)
    return _Native(_reader.read_small, _reader.check, _reader.advance)


_native = _load_native()
_native_read = _native.read if _native is not None else None
_native_check = _native.check if _native is not None else None
_native_advance = _native.advance if _native is not None else None
