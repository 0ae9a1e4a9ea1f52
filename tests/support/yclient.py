"""A y-websocket protocol client that tests the server from the outside, as a browser would.

It behaves like the stock JS `WebsocketProvider` (y-websocket 3.x) on one connection: on open it
sends sync step 1 and, when it has a local awareness state, an awareness update for its own client
id; it answers the server's step 1 with step 2, applies step 2 and updates, is `synced` once it has
applied a step 2, sends its local document transactions as updates, applies awareness updates,
answers a query-awareness with all the states it knows, and like the stock provider it re-sends
every awareness change it applies, remote ones included (`echo_remote_awareness=False` sends only
its own state). It never reconnects. It imports nothing from `collab`.

Frames from the server that a stock client could not process (a truncated or padded length, an
unknown message or sync type, an update pycrdt rejects, a text frame) are recorded as errors and
re-raised, as `YProtocolError`, from the next `wait_*` call or at the end of the `async with`
block; they never vanish.

Pausing: `pause_reading()` stops the reader task and pauses the socket's asyncio transport at once
(`transport.pause_reading()`: no more `recv()` from the TCP socket). The connection is opened with a
small `max_queue`, so websockets' own flow control pauses the transport too if frames are already
queued. Unread data then fills the client's kernel receive buffer, the TCP window closes, and the
server's writes pile up in its own socket and transport buffers, which is what a server must detect
to disconnect a slow consumer. On loopback the kernels absorb about 4-5 MB first (the server's send
buffer grows up to net.ipv4.tcp_wmem's maximum); `recv_buffer_bytes` (SO_RCVBUF, set before
connecting, which also turns off receive-window autotuning) keeps the client's share small. Use
`compression=None` when flooding with compressible data, or the wire carries far less than sent.
While paused, the client does not see the server's close or pings either; call `resume_reading()`
before `wait_closed()`.

Timeouts default to `DEFAULT_TIMEOUT_S` and every timeout is multiplied by the float in the
environment variable `COLLAB_TEST_TIMEOUT_FACTOR` (default 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from pycrdt import (
    Awareness,
    Decoder,
    Doc,
    Encoder,
    Text,
    TransactionEvent,
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    read_message,
)
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.waiting import scaled

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MAX_QUEUE_FRAMES = 4
REMOTE_ORIGIN = "yclient-remote"
MESSAGE_AUTH = 2
MESSAGE_QUERY_AWARENESS = 3
TEXT_FRAME = -1  # message type recorded in `received` for a text frame
EMPTY_FRAME = -2  # ... and for an empty binary frame
ABNORMAL_CLOSURE = 1006

_EMPTY_STATE: Mapping[str, Any] = MappingProxyType({})


class YProtocolError(Exception):
    """A frame from the server that a stock y-websocket client could not process."""


class YClientClosedError(ConnectionError):
    """The connection closed before the awaited condition held."""


def scaled_timeout(timeout_s: float | None = None) -> float:
    """`timeout_s` (default `DEFAULT_TIMEOUT_S`) multiplied by the environment's factor."""
    return scaled(DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s)


def with_token(url: str, token: str | None) -> str:
    """`url` with `token` appended as the `token` query parameter (unchanged if None)."""
    if token is None:
        return url
    parts = urlsplit(url)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=query + urlencode({"token": token})))


def _exact_payload(data: bytes) -> bytes:
    """The var-uint length-prefixed payload that must fill `data` exactly."""
    if not data:
        raise YProtocolError("missing length-prefixed payload")
    decoder = Decoder(data)
    try:
        length = decoder.read_var_uint()
    except IndexError:
        raise YProtocolError("truncated length prefix") from None
    rest = len(data) - decoder.i0
    if length != rest:
        raise YProtocolError(f"length prefix says {length} bytes, {rest} follow")
    return read_message(data)


def _check_awareness_update(update: bytes) -> None:
    """Raise YProtocolError unless `update` is exactly a well-formed awareness update.

    pycrdt reads a truncated state as "no state"; the stock client throws on it.
    """
    decoder = Decoder(update)
    try:
        for _ in range(decoder.read_var_uint()):
            decoder.read_var_uint()  # client id
            decoder.read_var_uint()  # clock
            length = decoder.read_var_uint()
            if length > decoder.length:
                raise YProtocolError(f"awareness state of {length} bytes, {decoder.length} left")
            state = update[decoder.i0 : decoder.i0 + length]
            decoder.i0 += length
            decoder.length -= length
            json.loads(state.decode("utf-8"))
    except (IndexError, RuntimeError):
        raise YProtocolError("truncated awareness update") from None
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError
        raise YProtocolError(f"awareness state is not JSON: {exc}") from exc
    if decoder.length:
        raise YProtocolError(f"{decoder.length} bytes after the awareness update")


@dataclass
class _Outgoing:
    data: bytes | str
    done: asyncio.Future[None] | None = field(default=None)


class YClient:
    """One y-websocket connection with its own pycrdt `Doc` and `Awareness`.

    Use `YClient.connect(...)` as an async context manager; attributes are read freely.
    """

    def __init__(
        self,
        ws: ClientConnection,
        doc: Doc[Any],
        awareness_state: Mapping[str, Any] | None,
        echo_remote_awareness: bool,
    ) -> None:
        self.doc = doc
        self.awareness = Awareness(doc)  # starts with the local state {} (clock 0), as in JS
        if awareness_state is None or awareness_state:
            self.set_awareness(awareness_state)
        self.synced = asyncio.Event()
        self.received: list[tuple[int, bytes]] = []
        self.sent: list[bytes | str] = []
        self.unsent: list[bytes | str] = []
        self.permission_denied: list[str] = []
        self.close_code: int | None = None  # received from the server; 1006 if none came
        self.close_reason: str | None = None
        self.close_sent_code: int | None = None  # sent by this client (e.g. 1009 over max_size)
        self._ws = ws
        self._echo_remote_awareness = echo_remote_awareness
        self._closed = asyncio.Event()
        self._reading = asyncio.Event()
        self._reading.set()
        self._progress = asyncio.Event()
        self._errors: list[BaseException] = []
        self._outbox: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self._applying_remote = False
        self._tasks: list[asyncio.Task[None]] = []
        self._doc_subscription: Any = None
        self._awareness_subscription: str | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        doc: Doc[Any] | None = None,
        max_size: int | None = None,
        awareness_state: Mapping[str, Any] | None = _EMPTY_STATE,
        echo_remote_awareness: bool = True,
        max_queue: int = DEFAULT_MAX_QUEUE_FRAMES,
        recv_buffer_bytes: int | None = None,
        compression: str | None = "deflate",
        open_timeout: float | None = None,
    ) -> AsyncIterator[YClient]:
        """Open a connection to `url` (with `?token=` when given) and run the protocol on it.

        `max_size` limits incoming messages (None: no limit, like a browser). `awareness_state`
        is the initial local state: `{}` like the stock provider, which peers ignore because its
        clock is 0 (y-protocols applies a new client's state only from clock 1: pass a non-empty
        state to be seen), or None for no state. `max_queue` and `recv_buffer_bytes` bound what
        is buffered while reading is paused. Raises websockets' `InvalidStatus` when the server
        refuses the upgrade. On exit the client announces its awareness removal and closes with
        1000 (as `provider.destroy()` does) unless it is already closed, then re-raises errors
        the reader recorded.
        """
        sock = None if recv_buffer_bytes is None else await _open_socket(url, recv_buffer_bytes)
        try:
            ws = await ws_connect(
                with_token(url, token),
                additional_headers=dict(headers) if headers else None,
                max_size=max_size,
                max_queue=max_queue,
                compression=compression,
                proxy=None,
                ping_interval=None,
                open_timeout=scaled_timeout(10 if open_timeout is None else open_timeout),
                close_timeout=scaled_timeout(),
                sock=sock,
            )
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        client = cls(ws, doc if doc is not None else Doc(), awareness_state, echo_remote_awareness)
        client._start()
        try:
            yield client
        except BaseException as exc:
            try:
                await client._shutdown()
            except Exception as shutdown_error:
                exc.add_note(f"YClient shutdown also failed: {shutdown_error!r}")
            for error in client._take_errors():
                exc.add_note(f"YClient reader also recorded: {error!r}")
            raise
        await client._shutdown()
        client._raise_pending()

    @property
    def client_id(self) -> int:
        return self.doc.client_id

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def frames(self, msg_type: int) -> list[bytes]:
        """The received frames of one message type, oldest first."""
        return [frame for kind, frame in self.received if kind == msg_type]

    def awareness_states(self) -> dict[int, dict[str, Any]]:
        """A copy of all awareness states this client knows, its own included."""
        return copy.deepcopy(self.awareness.states)

    def set_awareness(self, state: Mapping[str, Any] | None) -> None:
        """Set (or with None remove) the local awareness state; the update is sent."""
        self.awareness.set_local_state(None if state is None else dict(state))

    async def send_raw(self, data: bytes | str, timeout: float | None = None) -> None:
        """Send one arbitrary frame after everything queued before it; raises if it cannot."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.put_nowait(_Outgoing(data, done))
        async with asyncio.timeout(scaled_timeout(timeout)):
            await done

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued frame was handed to the socket (or found unsendable)."""
        async with asyncio.timeout(scaled_timeout(timeout)):
            await self._outbox.join()

    async def wait_until(
        self,
        predicate: Callable[[], object],
        timeout: float | None = None,
        *,
        what: str | None = None,
    ) -> None:
        """Return once `predicate()` is true, checking now and after every received frame.

        Raises `TimeoutError` (with the client's state) when it stays false, `YClientClosedError`
        when the connection closes first, and any error the reader recorded meanwhile. For a
        condition on several clients use `wait_until_any`, which wakes on any of their frames.
        """
        await wait_until_any([self], predicate, timeout, what=what)

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Wait until a sync step 2 from the server has been applied."""
        await self.wait_until(self.synced.is_set, timeout, what="synced (sync step 2 applied)")

    async def wait_closed(self, timeout: float | None = None) -> int:
        """Wait until the connection is closed and return its close code (1006: no close frame).

        While reading is paused the close cannot be seen: call `resume_reading()` first.
        """
        async with asyncio.timeout(scaled_timeout(timeout)):
            await self._closed.wait()
        self._raise_pending()
        assert self.close_code is not None
        return self.close_code

    def pause_reading(self) -> None:
        """Stop consuming frames and stop reading from the TCP socket (see the module doc)."""
        self._reading.clear()
        self._ws.transport.pause_reading()

    def resume_reading(self) -> None:
        """Consume frames again, the ones queued while paused first."""
        self._reading.set()
        # If websockets' own flow control paused the transport, it resumes it once drained.
        if not getattr(self._ws.recv_messages, "paused", False):
            self._ws.transport.resume_reading()

    async def close(
        self,
        code: int = 1000,
        reason: str = "",
        *,
        leave_awareness: bool = True,
        timeout: float | None = None,
    ) -> None:
        """Close the connection and wait until it is closed.

        With `leave_awareness` it first sends its awareness state as removed, like the stock
        provider's `disconnect()`; without it the server alone must tell the others.
        """
        if self._closed.is_set():
            return
        self.resume_reading()
        if leave_awareness and self.awareness.get_local_state() is not None:
            self._outbox.put_nowait(_Outgoing(self._leave_message()))
        # A server that stopped reading must not block the close; what is left ends in `unsent`.
        with contextlib.suppress(TimeoutError):
            await self.flush(timeout)
        await self._ws.close(code, reason)
        async with asyncio.timeout(scaled_timeout(timeout)):
            await self._closed.wait()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame, as a crashed browser would."""
        self._reading.set()
        self._ws.transport.abort()

    def _start(self) -> None:
        # Queued before the writer starts, so they go out first, as the stock provider's onopen.
        self._send(create_sync_message(self.doc))
        if self.awareness.get_local_state() is not None:
            own = self.awareness.encode_awareness_update([self.client_id])
            self._send(create_awareness_message(own))
        self._doc_subscription = self.doc.observe(self._on_doc_update)
        self._awareness_subscription = self.awareness.observe(self._on_awareness_change)
        self._tasks = [
            asyncio.create_task(self._read_loop(), name=f"yclient-{self.client_id}-reader"),
            asyncio.create_task(self._write_loop(), name=f"yclient-{self.client_id}-writer"),
            asyncio.create_task(self._awareness_loop(), name=f"yclient-{self.client_id}-awareness"),
        ]

    async def _shutdown(self) -> None:
        try:
            if not self._closed.is_set():
                await self.close()
        finally:
            for task in self._tasks:
                task.cancel()
            if self._tasks:
                await asyncio.wait(self._tasks)
            if self._doc_subscription is not None:
                self.doc.unobserve(self._doc_subscription)
                self._doc_subscription = None
            if self._awareness_subscription is not None:
                self.awareness.unobserve(self._awareness_subscription)
                self._awareness_subscription = None

    async def _read_loop(self) -> None:
        try:
            while True:
                if not self._reading.is_set():
                    await self._wait_reading_or_lost()
                frame = await self._ws.recv()
                self._handle_frame(frame)
                self._notify()
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else ABNORMAL_CLOSURE
            self.close_reason = exc.rcvd.reason if exc.rcvd is not None else ""
            self.close_sent_code = exc.sent.code if exc.sent is not None else None
        except Exception as exc:
            self._errors.append(exc)
            self._ws.transport.abort()
            self.close_code = self._ws.close_code or ABNORMAL_CLOSURE
            self.close_reason = self._ws.close_reason or ""
        finally:
            self._closed.set()
            # Like the stock provider: on close, every remote client is gone for this client.
            others = [cid for cid in self.awareness.states if cid != self.client_id]
            self.awareness.remove_awareness_states(others, REMOTE_ORIGIN)
            self._notify()

    async def _wait_reading_or_lost(self) -> None:
        resumed = asyncio.ensure_future(self._reading.wait())
        lost = asyncio.ensure_future(self._ws.wait_closed())
        try:
            await asyncio.wait([resumed, lost], return_when=asyncio.FIRST_COMPLETED)
        finally:
            resumed.cancel()
            lost.cancel()

    async def _awareness_loop(self) -> None:
        # pycrdt's timer, as y-protocols' in the browser: renew the local state every 15 s and
        # drop remote states not renewed for 30 s.
        try:
            await self.awareness.start()
        except Exception as exc:
            self._errors.append(exc)
            self._notify()

    async def _write_loop(self) -> None:
        while True:
            item = await self._outbox.get()
            try:
                await self._ws.send(item.data)
            except ConnectionClosed as exc:
                self.unsent.append(item.data)
                if item.done is not None and not item.done.done():
                    item.done.set_exception(exc)
            except Exception as exc:
                if item.done is not None and not item.done.done():
                    item.done.set_exception(exc)
                else:
                    self._errors.append(exc)
                    self._notify()
            else:
                self.sent.append(item.data)
                if item.done is not None and not item.done.done():
                    item.done.set_result(None)
            finally:
                self._outbox.task_done()

    def _handle_frame(self, frame: bytes | str) -> None:
        if isinstance(frame, str):
            self.received.append((TEXT_FRAME, frame.encode()))
            self._record(YProtocolError(f"text frame from the server: {frame[:60]!r}"))
            return
        if not frame:
            self.received.append((EMPTY_FRAME, frame))
            self._record(YProtocolError("empty binary frame from the server"))
            return
        msg_type = frame[0]
        self.received.append((msg_type, frame))
        try:
            if msg_type == YMessageType.SYNC:
                self._handle_sync(frame[1:])
            elif msg_type == YMessageType.AWARENESS:
                update = _exact_payload(frame[1:])
                _check_awareness_update(update)
                self.awareness.apply_awareness_update(update, REMOTE_ORIGIN)
            elif msg_type == MESSAGE_QUERY_AWARENESS:
                states = self.awareness.encode_awareness_update(list(self.awareness.states))
                self._send(create_awareness_message(states))
            elif msg_type == MESSAGE_AUTH:
                self._handle_auth(frame[1:])
            else:
                raise YProtocolError(f"unknown message type {msg_type}")
        except Exception as exc:
            error = exc if isinstance(exc, YProtocolError) else YProtocolError(repr(exc))
            if error is not exc:
                error.__cause__ = exc
            error.add_note(f"frame ({len(frame)} bytes): {frame[:48].hex()}")
            self._record(error)

    def _handle_sync(self, message: bytes) -> None:
        if not message:
            raise YProtocolError("sync message without a sync type")
        sync_type = message[0]
        if sync_type not in tuple(YSyncMessageType):
            raise YProtocolError(f"unknown sync message type {sync_type}")
        _exact_payload(message[1:])
        if sync_type == YSyncMessageType.SYNC_STEP1:
            reply = handle_sync_message(message, self.doc)
            assert reply is not None
            self._send(reply)
            return
        # pycrdt cannot read a transaction's origin inside an observer, hence the flag as well.
        self._applying_remote = True
        try:
            with self.doc.transaction(origin=REMOTE_ORIGIN):
                handle_sync_message(message, self.doc)
        finally:
            self._applying_remote = False
        if sync_type == YSyncMessageType.SYNC_STEP2:
            self.synced.set()

    def _handle_auth(self, message: bytes) -> None:
        decoder = Decoder(message)
        try:
            auth_type = decoder.read_var_uint()
            reason = decoder.read_var_string() if auth_type == 0 else ""
        except (IndexError, RuntimeError, UnicodeDecodeError) as exc:
            raise YProtocolError(f"malformed auth message: {exc!r}") from exc
        if auth_type != 0:
            raise YProtocolError(f"unknown auth message type {auth_type}")
        self.permission_denied.append(reason)

    def _on_doc_update(self, event: TransactionEvent) -> None:
        if not self._applying_remote:
            self._send(create_update_message(event.update))

    def _on_awareness_change(self, topic: str, change: tuple[dict[str, Any], Any]) -> None:
        if topic != "update":
            return
        if self._closed.is_set():
            return  # the stock provider sends nothing once disconnected
        changes, _origin = change
        changed = [*changes["added"], *changes["updated"], *changes["removed"]]
        if not self._echo_remote_awareness:
            changed = [cid for cid in changed if cid == self.client_id]
        if changed:
            self._send(create_awareness_message(self.awareness.encode_awareness_update(changed)))

    def _send(self, data: bytes) -> None:
        # Called from pycrdt observers, which must not raise: after close, keep it in `unsent`.
        if self._closed.is_set():
            self.unsent.append(data)
        else:
            self._outbox.put_nowait(_Outgoing(data))

    def _leave_message(self) -> bytes:
        # What the stock provider sends on disconnect(): its own id, current clock, state null.
        encoder = Encoder()
        encoder.write_var_uint(1)
        encoder.write_var_uint(self.client_id)
        encoder.write_var_uint(int(self.awareness.meta[self.client_id]["clock"]))
        encoder.write_var_string("null")
        return create_awareness_message(encoder.to_bytes())

    def _record(self, error: BaseException) -> None:
        self._errors.append(error)

    def _notify(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    def _take_errors(self) -> list[BaseException]:
        errors, self._errors = self._errors, []
        return errors

    def _raise_pending(self) -> None:
        errors = self._take_errors()
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise BaseExceptionGroup(f"YClient {self.client_id}: {len(errors)} errors", errors)

    def _state(self) -> str:
        counts = Counter(kind for kind, _ in self.received)
        last = [kind for kind, _ in self.received[-8:]]
        closed = f"closed {self.close_code} {self.close_reason!r}" if self.closed else "open"
        paused = "" if self._reading.is_set() else ", reading paused"
        return (
            f"client {self.client_id}: synced={self.synced.is_set()}, {closed}{paused}, "
            f"received {len(self.received)} frames by type {dict(counts)}, last types {last}, "
            f"{self._outbox.qsize()} queued to send"
        )

    def __repr__(self) -> str:
        return f"<YClient {self._state()}>"


async def assert_room_still_syncs(survivor: YClient, url: str, text: str) -> None:
    """After another connection of the room was closed: `survivor` types `text` into "t" and
    a client that joins the room at `url` afterwards receives it."""
    survivor.doc.get("t", type=Text).insert(0, text)
    async with YClient.connect(url) as checker:
        await checker.wait_until(lambda: str(checker.doc.get("t", type=Text)) == text)


async def wait_until_any(
    clients: Sequence[YClient],
    predicate: Callable[[], object],
    timeout: float | None = None,
    *,
    what: str | None = None,
) -> None:
    """Return once `predicate()` is true, checking now and after a frame on any of `clients`.

    Raises `TimeoutError` naming the condition and every client's state when it stays false,
    `YClientClosedError` when one of the connections closes first, and reader errors.
    """
    timeout_s = scaled_timeout(timeout)
    deadline = asyncio.get_running_loop().time() + timeout_s

    def states() -> str:
        return "; ".join(client._state() for client in clients)

    while True:
        for client in clients:
            client._raise_pending()
        progress = [client._progress for client in clients]
        if predicate():
            return
        if any(client.closed for client in clients):
            raise YClientClosedError(
                f"{_describe(predicate, what)} did not hold before a connection closed; {states()}"
            )
        waiters = [asyncio.ensure_future(event.wait()) for event in progress]
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            for client in clients:
                client._raise_pending()
            if predicate():
                return
            raise TimeoutError(
                f"{_describe(predicate, what)} did not hold within {timeout_s:.1f}s; {states()}"
            ) from None
        finally:
            for waiter in waiters:
                waiter.cancel()


def _describe(predicate: Callable[[], object], what: str | None) -> str:
    if what is not None:
        return what
    try:
        return inspect.getsource(predicate).strip()  # a lambda's source line reads best
    except (OSError, TypeError):
        return getattr(predicate, "__qualname__", repr(predicate))


async def _open_socket(url: str, recv_buffer_bytes: int) -> socket.socket:
    """A connected non-blocking TCP socket whose SO_RCVBUF was set before connecting."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    loop = asyncio.get_running_loop()
    addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, kind, proto, _, address = addresses[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer_bytes)
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


async def connect_http_error(
    url: str,
    token: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> tuple[int, bytes]:
    """Attempt a WebSocket upgrade that the server must refuse; return (HTTP status, body).

    Raises AssertionError if the server accepts the upgrade.
    """
    try:
        ws = await ws_connect(
            with_token(url, token),
            additional_headers=dict(headers) if headers else None,
            proxy=None,
            open_timeout=scaled_timeout(timeout),
        )
    except InvalidStatus as exc:
        return exc.response.status_code, bytes(exc.response.body or b"")
    await ws.close()
    raise AssertionError(f"the server accepted the WebSocket upgrade to {url}")
