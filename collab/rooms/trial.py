"""Reading and trying large updates in a worker process the server can abandon.

Integrating a Yjs update can cost far more than its size suggests: two valid 64 KB updates
of 8,000 inserts at one position, from two client ids in the wrong order, take seconds of
CPU, and pycrdt holds the GIL while it integrates, so a thread would not help. A room applies
small updates on the event loop; a large one (or any from a user whose updates proved slow)
is first read and tried on a replica of the room's document in `TrialWorker`'s process:

- `trial(room_id, diff, update, deadline_s)` reads the update there (`read_update`), brings
  the worker's replica of the room up to date, and, when the update brings something new and
  lacks nothing, applies it to the replica. It answers the update's shape and how long the
  apply took. Past `deadline_s` the process is killed (and started again for the next
  caller): the update is refused as too costly and the event loop never pays for it. An
  update that passes costs the event loop about what it cost the worker.
- `read(update)` only reads it there: for large updates from other instances, which are
  not tried again (their instance did) but must not be read on the event loop either.
- Replicas are kept for the `MAX_REPLICAS` rooms tried last. `diff(state_vector)` gives what
  the room has beyond the replica's state vector (the whole state for None): a run of
  trials in a big document ships only what changed in between, not the document.

One process, one request at a time: the worker is a safety valve for rare large updates, not
a pool for ordinary edits. It trusts the main process: requests are ours, not a client's.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from collab.errors import PolicyViolation, ProtocolError
from collab.protocol.updates import (
    InvalidUpdate,
    UpdateShape,
    carries_new_structs,
    missing_dependencies,
    read_state_vector,
    read_update,
)

# Bringing a replica up to date is linear in what changed (a whole 32 MiB document loads in
# about a second here); only the update's own apply is held to the deadline.
LOAD_TIMEOUT_S = 30.0
MAX_REPLICAS = 4
_LENGTH = struct.Struct("!I")
_FULL = b"F"
_DIFF = b"D"
_READ = b"R"
_SYNCED = "synced"
_NEED_STATE = "need_state"

StateSince = Callable[[bytes | None], bytes]
"""The room's content beyond a state vector, as a Yjs update (the whole state for None)."""


class UpdateTooCostly(PolicyViolation):
    """Applying the update took longer than COLLAB_MAX_APPLY_MS on a copy of the document; it
    is not applied (WebSocket close 1008, HTTP 422)."""


@dataclass(frozen=True, slots=True)
class TrialResult:
    """The update's shape, and how long its apply took on the replica in seconds (None when
    it was not applied there: it brings nothing new, or lacks what it builds on)."""

    shape: UpdateShape
    apply_s: float | None


class TrialWorker:
    """A worker process (`python -m collab.rooms.trial`) for `trial`; started on first use,
    restarted after a kill. `close()` stops it."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        # The state vector of each replica the worker holds, least recently tried first;
        # the worker evicts in the same order.
        self._replicas: OrderedDict[str, bytes] = OrderedDict()
        self.kills = 0

    async def read(self, update: bytes) -> UpdateShape:
        """`read_update(update)` in the worker, off the event loop. Raises `InvalidUpdate`."""
        async with self._lock:
            process = await self._started()
            _send(process, _READ, b"", b"", update)
            answer = await self._answer(process, LOAD_TIMEOUT_S, "reading the update")
        if isinstance(answer, tuple) and answer[0] == "read":
            shape: UpdateShape = answer[1]
            return shape
        raise _refusal(answer)

    async def trial(
        self, room_id: str, state_since: StateSince, update: bytes, deadline_s: float
    ) -> TrialResult:
        """Read `update` and try it on the worker's replica of `room_id`. Raises
        `InvalidUpdate`, `UpdateTooCostly` past `deadline_s`, and `ProtocolError` when the
        CRDT library refuses it."""
        async with self._lock:
            process = await self._started()
            replica_state = self._replicas.pop(room_id, None)
            answer = await self._ask(
                process, room_id, replica_state, state_since, update, deadline_s
            )
            if answer == _NEED_STATE:
                answer = await self._ask(process, room_id, None, state_since, update, deadline_s)
            if not isinstance(answer, tuple) or answer[0] != "tried":
                self._replicas.pop(room_id, None)
                raise _refusal(answer)
            _, shape, apply_s, replica_state = answer
            self._replicas[room_id] = replica_state
            while len(self._replicas) > MAX_REPLICAS:
                self._replicas.popitem(last=False)
        return TrialResult(shape, apply_s)

    async def _ask(
        self,
        process: asyncio.subprocess.Process,
        room_id: str,
        replica_state: bytes | None,
        state_since: StateSince,
        update: bytes,
        deadline_s: float,
    ) -> object:
        mode = _FULL if replica_state is None else _DIFF
        _send(process, mode, room_id.encode(), state_since(replica_state), update)
        answer = await self._answer(process, LOAD_TIMEOUT_S, "updating the replica")
        if answer == _SYNCED:
            answer = await self._answer(process, deadline_s, "applying the update")
        return answer

    async def _answer(
        self, process: asyncio.subprocess.Process, timeout_s: float, what: str
    ) -> object:
        assert process.stdout is not None
        try:
            header = await asyncio.wait_for(process.stdout.readexactly(_LENGTH.size), timeout_s)
            (length,) = _LENGTH.unpack(header)
            body = await asyncio.wait_for(process.stdout.readexactly(length), timeout_s)
        except TimeoutError:
            await self._kill()
            raise UpdateTooCostly(
                f"{what} took over {timeout_s * 1000:.0f} ms on a copy of the document: "
                "COLLAB_MAX_APPLY_MS"
            ) from None
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            await self._kill()
            raise ProtocolError(f"the update made the trial worker fail: {error}") from None
        # Our own child process wrote it: not untrusted input.
        return pickle.loads(body)

    async def _started(self) -> asyncio.subprocess.Process:
        if self._process is not None and self._process.returncode is None:
            return self._process
        self._replicas.clear()
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "collab.rooms.trial",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return self._process

    async def _kill(self) -> None:
        process, self._process = self._process, None
        self._replicas.clear()
        if process is not None and process.returncode is None:
            self.kills += 1
            process.kill()
            await process.wait()

    async def close(self) -> None:
        async with self._lock:
            process, self._process = self._process, None
            if process is None or process.returncode is not None:
                return
            assert process.stdin is not None
            process.stdin.close()  # the worker reads end of input and exits
            try:
                await asyncio.wait_for(process.wait(), 5.0)
            except TimeoutError:
                process.kill()
                await process.wait()


def _refusal(answer: object) -> ProtocolError:
    if isinstance(answer, tuple) and answer[0] == "invalid":
        return InvalidUpdate(answer[1])
    return ProtocolError(f"invalid Yjs update: {answer}")


def _send(process: asyncio.subprocess.Process, mode: bytes, *fields: bytes) -> None:
    assert process.stdin is not None
    parts = [mode]
    for field in fields:
        parts += [_LENGTH.pack(len(field)), field]
    process.stdin.writelines(parts)


def _read_request(source: BinaryIO) -> tuple[bytes, bytes, bytes, bytes] | None:
    mode = source.read(1)
    if not mode:
        return None
    fields = []
    for _ in range(3):
        (length,) = _LENGTH.unpack(source.read(_LENGTH.size))
        fields.append(source.read(length))
    return mode, fields[0], fields[1], fields[2]


def _write_answer(sink: BinaryIO, answer: object) -> None:
    body = pickle.dumps(answer)
    sink.write(_LENGTH.pack(len(body)) + body)
    sink.flush()


def serve(source: BinaryIO, sink: BinaryIO) -> None:
    """The worker's loop: requests from `source`, answers to `sink`, until end of input.
    Answers are plain tuples: this module is __main__ here, its classes would not unpickle
    in the server."""
    from pycrdt import Doc

    replicas: OrderedDict[str, Doc[Any]] = OrderedDict()
    while (request := _read_request(source)) is not None:
        mode, raw_room_id, state, update = request
        if mode == _READ:
            try:
                _write_answer(sink, ("read", read_update(update)))
            except InvalidUpdate as error:
                _write_answer(sink, ("invalid", str(error)))
            continue
        room_id = raw_room_id.decode()
        replica = replicas.pop(room_id, None)
        if mode == _DIFF and replica is None:
            _write_answer(sink, _NEED_STATE)
            continue
        try:
            shape = read_update(update)
        except InvalidUpdate as error:
            _write_answer(sink, ("invalid", str(error)))
            continue
        try:
            if mode == _FULL:
                replica = Doc()
            assert replica is not None
            replica.apply_update(state)
            replicas[room_id] = replica
            while len(replicas) > MAX_REPLICAS:
                replicas.popitem(last=False)
            _write_answer(sink, _SYNCED)
            clocks = read_state_vector(replica.get_state())
            apply_s = None
            if missing_dependencies(shape, clocks) is None and carries_new_structs(shape, clocks):
                started = time.perf_counter()
                replica.apply_update(update)
                apply_s = time.perf_counter() - started
            _write_answer(sink, ("tried", shape, apply_s, replica.get_state()))
        except Exception as error:
            # Not swallowed: carried to the server, which raises it as a ProtocolError
            # (`_refusal`), as `contained_pycrdt_errors` turns pycrdt's errors on an untrusted
            # update into one on the event loop. The replica may be half updated: dropped.
            replicas.pop(room_id, None)
            _write_answer(sink, ("failed", f"{type(error).__name__}: {error}"))


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
