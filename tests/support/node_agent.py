"""Drive real Yjs clients (the stock y-websocket provider under Node.js) from async tests.

`NodeAgent` runs `tests/support/js/agent.mjs`, which holds any number of named clients, each a
`Y.Doc` with a `WebsocketProvider`, and answers newline-delimited JSON commands::

    async with NodeAgent() as agent:
        await agent.connect("alice", "ws://127.0.0.1:8000/ws/docs", "w1/n1", token=token)
        await agent.wait_synced("alice")
        await agent.text_insert("alice", "body", 0, "hello")

Every wait is bounded: call timeouts default to `DEFAULT_TIMEOUT_S`, scaled (like the waits'
own timeouts) by the environment variable `COLLAB_TEST_TIMEOUT_FACTOR` (a float, default 1).

Errors: `AgentError` when the agent answers ok:false, `AgentTimeout` (an `AgentError`) when it
does not answer in time, `AgentExited` (an `AgentError`) when the process ends; a
`RuntimeError` naming the command to run when Node.js or `tests/node_modules` is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import shutil
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypedDict

from tests.support.waiting import scaled

TESTS_DIR = Path(__file__).resolve().parent.parent
AGENT_SCRIPT = TESTS_DIR / "support" / "js" / "agent.mjs"
NODE_MODULES = TESTS_DIR / "node_modules"
REQUIRED_PACKAGES = ("yjs", "y-websocket", "ws", "y-protocols", "lib0")
INSTALL_HINT = "npm ci --prefix tests"

DEFAULT_TIMEOUT_S = 30.0
SHUTDOWN_STEP_S = 5.0
# margin beyond a wait's own timeout_ms before the caller gives up on the reply
REPLY_MARGIN_S = 5.0
MAX_LINE_BYTES = 256 * 1024 * 1024
STDERR_KEPT_LINES = 2000
STDERR_TAIL_LINES = 40

RootKind = Literal["text", "delta", "map", "array", "xml"]
ConnectionStatus = Literal["connected", "connecting", "disconnected"]
EventType = Literal["status", "sync", "connection-close", "connection-error", "closed"]

log = logging.getLogger(__name__)


class AgentError(Exception):
    """The agent answered a command with ok:false, or could not answer it."""

    def __init__(self, cmd: str, message: str, stderr_tail: str = "") -> None:
        self.cmd = cmd
        self.message = message
        self.stderr_tail = stderr_tail
        text = f"{cmd}: {message}"
        if stderr_tail:
            text += f"\n--- agent stderr (tail) ---\n{stderr_tail}"
        super().__init__(text)


class AgentTimeout(AgentError):
    """No reply arrived within the call timeout."""


class AgentExited(AgentError):
    """The agent process ended before replying."""


class TraceReplay(TypedDict):
    transactions: int
    patches: int
    final_length: int
    matches_end_content: bool | None
    elapsed_ms: int


class ClientStatus(TypedDict):
    status: ConnectionStatus
    synced: bool
    should_connect: bool
    url: str


def node_unavailable_reason() -> str | None:
    """Return why the agent cannot run here (with the command that fixes it), or None."""
    if shutil.which("node") is None:
        return f"`node` is not on PATH: install Node.js >= 20, then run `{INSTALL_HINT}`"
    missing = [p for p in REQUIRED_PACKAGES if not (NODE_MODULES / p / "package.json").is_file()]
    if missing:
        return (
            f"npm packages missing from {NODE_MODULES} ({', '.join(missing)}): "
            f"run `{INSTALL_HINT}` from the repository root"
        )
    return None


class NodeAgent:
    """One `node agent.mjs` process; an async context manager.

    `call()` sends any command; the other methods are typed shorthands for the common ones.
    Timeouts passed to the helpers are in seconds and are scaled by `tests.support.waiting.scaled`.
    """

    def __init__(self, *, node: str | None = None, env: Mapping[str, str] | None = None) -> None:
        self._node = node
        self._env = dict(env) if env is not None else None
        self._proc: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._write_lock = asyncio.Lock()
        self._stderr: deque[str] = deque(maxlen=STDERR_KEPT_LINES)
        self._unexpected_stdout: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._exit_code: int | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def stderr(self) -> str:
        """The agent's stderr so far (the last `STDERR_KEPT_LINES` lines)."""
        return "\n".join(self._stderr)

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    def _stderr_tail(self) -> str:
        lines = list(self._stderr)[-STDERR_TAIL_LINES:]
        if self._unexpected_stdout:
            lines.append(f"(unexpected stdout lines: {self._unexpected_stdout[-5:]!r})")
        return "\n".join(lines)

    async def start(self) -> None:
        """Spawn the agent and check that it answers; raise RuntimeError if it cannot run."""
        if self._proc is not None:
            raise RuntimeError("NodeAgent already started")
        node = self._node
        if node is None:
            reason = node_unavailable_reason()
            if reason is not None:
                raise RuntimeError(f"cannot start the Yjs test agent: {reason}")
            node = shutil.which("node")
            assert node is not None
        self._proc = await asyncio.create_subprocess_exec(
            node,
            str(AGENT_SCRIPT),
            cwd=TESTS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env,
            limit=MAX_LINE_BYTES,
        )
        self._tasks = [
            asyncio.create_task(self._read_replies(), name="node-agent-stdout"),
            asyncio.create_task(self._read_stderr(), name="node-agent-stderr"),
        ]
        try:
            await self.call("ping")
        except AgentError as exc:
            await self.close()
            raise RuntimeError(f"the Yjs test agent did not start: {exc}") from exc

    async def _read_replies(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        stdout = self._proc.stdout
        while line := await stdout.readline():
            try:
                reply = json.loads(line)
                reply_id = reply["id"]
            except (ValueError, KeyError, TypeError):
                text = line.decode(errors="replace").rstrip()
                log.error("node agent: unexpected stdout line %r", text)
                self._unexpected_stdout.append(text)
                continue
            entry = self._pending.pop(reply_id, None) if isinstance(reply_id, int) else None
            if entry is None:
                if reply_id is not None:
                    log.warning("node agent: reply to an unknown or abandoned call: %r", reply)
                else:
                    log.error("node agent: reply without id: %r", reply)
                continue
            cmd, future = entry
            if future.done():
                continue
            if reply.get("ok") is True:
                future.set_result(reply.get("result"))
            else:
                future.set_exception(AgentError(cmd, str(reply.get("error")), self._stderr_tail()))
        self._exit_code = await self._proc.wait()
        # let the stderr reader finish so the failure message carries the agent's last words
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._tasks[1]), timeout=1.0)
        pending, self._pending = self._pending, {}
        for cmd, future in pending.values():
            if not future.done():
                future.set_exception(
                    AgentExited(
                        cmd, f"agent exited with code {self._exit_code}", self._stderr_tail()
                    )
                )

    async def _read_stderr(self) -> None:
        assert self._proc is not None
        assert self._proc.stderr is not None
        stderr = self._proc.stderr
        while line := await stderr.readline():
            text = line.decode(errors="replace").rstrip("\n")
            self._stderr.append(text)
            log.debug("node agent: %s", text)

    async def call(self, cmd: str, /, *, call_timeout: float | None = None, **args: Any) -> Any:
        """Send `cmd` with `args` and return its result.

        `call_timeout` (seconds, not scaled) defaults to `scaled(DEFAULT_TIMEOUT_S)`, or to the
        command's own `timeout_ms` plus a margin when that is longer. Raises AgentError (ok:false),
        AgentTimeout, or AgentExited.
        """
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise AgentError(cmd, "agent is not running (use `async with NodeAgent()`)")
        if proc.returncode is not None or self._exit_code is not None:
            raise AgentExited(cmd, f"agent exited with code {proc.returncode}", self._stderr_tail())
        if call_timeout is None:
            call_timeout = scaled(DEFAULT_TIMEOUT_S)
            wait_ms = args.get("timeout_ms")
            if isinstance(wait_ms, int | float):
                call_timeout = max(call_timeout, wait_ms / 1000 + scaled(REPLY_MARGIN_S))
        call_id = next(self._ids)
        line = json.dumps({"id": call_id, "cmd": cmd, **args}, separators=(",", ":")) + "\n"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = (cmd, future)
        try:
            async with self._write_lock:
                proc.stdin.write(line.encode())
                await proc.stdin.drain()
            async with asyncio.timeout(call_timeout):
                return await future
        except TimeoutError:
            raise AgentTimeout(
                cmd, f"no reply within {call_timeout:.1f} s", self._stderr_tail()
            ) from None
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise AgentExited(cmd, f"agent stdin closed: {exc}", self._stderr_tail()) from exc
        finally:
            self._pending.pop(call_id, None)

    async def kill(self) -> None:
        """SIGKILL the agent: its sockets vanish without a close handshake, like a crash."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()

    async def close(self) -> None:
        """Quit the agent: ask it, then close stdin, then terminate, then kill (each bounded)."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(AgentError):
                await self.call("quit", call_timeout=scaled(SHUTDOWN_STEP_S))
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await proc.stdin.wait_closed()
        for stop in (None, proc.terminate, proc.kill):
            if proc.returncode is not None:
                break
            if stop is not None:
                with contextlib.suppress(ProcessLookupError):
                    stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), timeout=scaled(SHUTDOWN_STEP_S))
        await proc.wait()
        _, still_running = await asyncio.wait(self._tasks, timeout=scaled(SHUTDOWN_STEP_S))
        for task in still_running:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if proc.returncode not in (0, None):
            log.warning("node agent exited with code %s\n%s", proc.returncode, self._stderr_tail())

    # -- typed helpers --------------------------------------------------------------------------

    @staticmethod
    def _ms(timeout_s: float | None) -> int:
        return int(scaled(DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s) * 1000)

    async def connect(
        self,
        client: str,
        url: str,
        room: str,
        token: str | None = None,
        *,
        connect: bool = True,
        params: Mapping[str, str] | None = None,
        max_backoff_ms: int | None = None,
        awareness: Mapping[str, Any] | None = None,
    ) -> int:
        """Create client `client` (a Y.Doc and a WebsocketProvider) and return its Yjs clientID.

        `awareness` is set as the local state before connecting. Without it the client keeps the
        stock initial state (`{}` at clock 0), which peers joining later ignore until the 15 s
        renewal: set a state on every client whose presence a test checks.
        """
        args: dict[str, Any] = {"client": client, "url": url, "room": room, "connect": connect}
        if token is not None:
            args["token"] = token
        if params is not None:
            args["params"] = dict(params)
        if max_backoff_ms is not None:
            args["max_backoff_ms"] = max_backoff_ms
        if awareness is not None:
            args["awareness"] = dict(awareness)
        result = await self.call("connect", **args)
        return int(result["client_id"])

    async def wait_synced(self, client: str, timeout_s: float | None = None) -> None:
        await self.call("wait_synced", client=client, timeout_ms=self._ms(timeout_s))

    async def disconnect(self, client: str) -> None:
        await self.call("disconnect", client=client)

    async def reconnect(self, client: str) -> None:
        await self.call("reconnect", client=client)

    async def set_params(self, client: str, params: Mapping[str, str]) -> None:
        await self.call("set_params", client=client, params=dict(params))

    async def destroy(self, client: str) -> None:
        await self.call("destroy", client=client)

    async def status(self, client: str) -> ClientStatus:
        result: ClientStatus = await self.call("status", client=client)
        return result

    async def wait_status(
        self, client: str, status: ConnectionStatus, timeout_s: float | None = None
    ) -> None:
        await self.call("wait_status", client=client, status=status, timeout_ms=self._ms(timeout_s))

    async def events(self, client: str, *, clear: bool = False) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call("events", client=client, clear=clear)
        return result

    async def wait_event(
        self, client: str, type: EventType, count: int = 1, timeout_s: float | None = None
    ) -> list[dict[str, Any]]:
        """Wait until `count` events of `type` are recorded; return all of them."""
        result: list[dict[str, Any]] = await self.call(
            "wait_event", client=client, type=type, count=count, timeout_ms=self._ms(timeout_s)
        )
        return result

    async def text_insert(self, client: str, root: str, index: int, text: str) -> None:
        await self.call("text_insert", client=client, root=root, index=index, text=text)

    async def text_delete(self, client: str, root: str, index: int, length: int) -> None:
        await self.call("text_delete", client=client, root=root, index=index, length=length)

    async def map_set(self, client: str, root: str, key: str, value: Any) -> None:
        await self.call("map_set", client=client, root=root, key=key, value=value)

    async def array_push(self, client: str, root: str, values: Sequence[Any]) -> None:
        await self.call("array_push", client=client, root=root, values=list(values))

    async def array_delete(self, client: str, root: str, index: int, length: int) -> None:
        await self.call("array_delete", client=client, root=root, index=index, length=length)

    async def xml_append_paragraph(self, client: str, root: str, text: str) -> None:
        await self.call("xml_append_paragraph", client=client, root=root, text=text)

    async def xml_paragraph_insert(
        self, client: str, root: str, paragraph: int, index: int, text: str
    ) -> None:
        """Type `text` at `index` into the text of the `paragraph`-th child of `root`."""
        await self.call(
            "xml_paragraph_insert",
            client=client,
            root=root,
            paragraph=paragraph,
            index=index,
            text=text,
        )

    async def transact(self, client: str, ops: Sequence[Mapping[str, Any]]) -> None:
        """Apply edit ops (`{"op": "text_insert", "root": ..., ...}`) in one Y transaction."""
        await self.call("transact", client=client, ops=[dict(op) for op in ops])

    async def read(self, client: str, roots: Mapping[str, RootKind]) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("read", client=client, roots=dict(roots))
        return result

    async def wait_for(
        self,
        client: str,
        roots: Mapping[str, RootKind],
        expected: Mapping[str, Any],
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Wait until `read(client, roots)` equals `expected`; return that value."""
        result: dict[str, Any] = await self.call(
            "wait_for",
            client=client,
            roots=dict(roots),
            expected=dict(expected),
            timeout_ms=self._ms(timeout_s),
        )
        return result

    async def client_id(self, client: str) -> int:
        return int(await self.call("client_id", client=client))

    async def state_vector(self, client: str) -> bytes:
        return bytes.fromhex(await self.call("state_vector_hex", client=client))

    async def state_update(self, client: str, state_vector: bytes | None = None) -> bytes:
        """Return the Yjs v1 update of the client's state (minus what `state_vector` has)."""
        args: dict[str, Any] = {"client": client}
        if state_vector is not None:
            args["state_vector_hex"] = state_vector.hex()
        return bytes.fromhex(await self.call("state_hex", **args))

    async def apply_update(self, client: str, update: bytes) -> None:
        """Apply a Yjs v1 update as a local change (the provider sends it on)."""
        await self.call("apply_update_hex", client=client, update_hex=update.hex())

    async def set_awareness(self, client: str, state: Mapping[str, Any] | None) -> None:
        await self.call(
            "set_awareness", client=client, state=None if state is None else dict(state)
        )

    async def set_awareness_field(self, client: str, field: str, value: Any) -> None:
        await self.call("set_awareness_field", client=client, field=field, value=value)

    async def awareness(self, client: str) -> dict[int, Any]:
        """Return every awareness state the client knows, by Yjs clientID (its own included)."""
        result: dict[str, Any] = await self.call("awareness", client=client)
        return {int(k): v for k, v in result.items()}

    async def wait_awareness(
        self, client: str, client_ids: Iterable[int], timeout_s: float | None = None
    ) -> dict[int, Any]:
        """Wait until exactly `client_ids` have awareness states; return the states."""
        result: dict[str, Any] = await self.call(
            "wait_awareness",
            client=client,
            expected_client_ids=sorted(set(client_ids)),
            timeout_ms=self._ms(timeout_s),
        )
        return {int(k): v for k, v in result.items()}

    async def wait_awareness_states(
        self, client: str, expected: Mapping[int, Any], timeout_s: float | None = None
    ) -> dict[int, Any]:
        result: dict[str, Any] = await self.call(
            "wait_awareness_states",
            client=client,
            expected={str(k): v for k, v in expected.items()},
            timeout_ms=self._ms(timeout_s),
        )
        return {int(k): v for k, v in result.items()}

    async def replay_trace(
        self,
        client: str,
        path: Path | str,
        root: str,
        txns_per_transaction: int = 1,
        timeout_s: float | None = None,
    ) -> TraceReplay:
        """Replay an editing trace (gzip or plain JSON, absolute `path`) into text root `root`."""
        if not Path(path).is_absolute():
            raise ValueError(f"replay_trace needs an absolute path, got {path!s}")
        result: TraceReplay = await self.call(
            "replay_trace",
            client=client,
            path=str(path),
            root=root,
            txns_per_transaction=txns_per_transaction,
            call_timeout=scaled(120.0 if timeout_s is None else timeout_s),
        )
        return result
