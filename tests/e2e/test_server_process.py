"""`collab serve`, `collab token` and `collab migrate` as a user runs them."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from pycrdt import Text

from collab.delivery.sealing import SecretSealer
from collab.delivery.signing import new_secret
from collab.protocol.close_codes import CloseCode
from collab.store import SqliteStore
from collab.store.rows import format_timestamp
from collab.store.webhooks import Endpoint
from collab.web.static import static_root
from tests.conftest import TEST_SECRET, ProcessFactory
from tests.e2e.conftest import token
from tests.support.servers import ServerProcess, clean_environ
from tests.support.waiting import eventually, scaled
from tests.support.yclient import YClient, connect_http_error


async def _run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "collab",
        *args,
        env={**clean_environ(), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), scaled(60))
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_sigterm_flushes_closes_clients_with_1012_and_exits_0(
    server_processes: ProcessFactory,
) -> None:
    """Graceful shutdown: clients are told to reconnect (1012), edits are flushed, exit 0."""
    served = await server_processes.start(COLLAB_FLUSH_INTERVAL_MS="60000")
    async with YClient.connect(f"{served.ws}/ws/docs/w1/n1?token={token()}") as client:
        await client.wait_synced()
        client.doc.get("t", type=Text).insert(0, "saved by the shutdown flush")
        await client.flush()
        async with YClient.connect(f"{served.ws}/ws/docs/w1/n1?token={token('u2')}") as other:
            await other.wait_until(
                lambda: str(other.doc.get("t", type=Text)) == "saved by the shutdown flush"
            )
            assert await served.stop(signal.SIGTERM) == 0
            assert await client.wait_closed() == CloseCode.SERVICE_RESTART
            assert await other.wait_closed() == CloseCode.SERVICE_RESTART
    restarted = await server_processes.start()
    async with YClient.connect(f"{restarted.ws}/ws/docs/w1/n1?token={token()}") as fresh:
        await fresh.wait_until(
            lambda: str(fresh.doc.get("t", type=Text)) == "saved by the shutdown flush"
        )


async def test_the_listening_socket_queues_what_collab_listen_backlog_says(
    server_processes: ProcessFactory,
) -> None:
    """The backlog reaches listen(2): `ss` reports it as the listening socket's Send-Q.
    aiohttp's own default (128) overflows when a restarted instance's clients reconnect."""
    default = await server_processes.start()
    configured = await server_processes.start(COLLAB_LISTEN_BACKLOG="77")
    assert await _listen_backlog(default.port) == 1024
    assert await _listen_backlog(configured.port) == 77


async def _listen_backlog(port: int) -> int:
    process = await asyncio.create_subprocess_exec(
        "ss", "-ltnH", f"sport = :{port}", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), scaled(30))
    [line] = out.decode().splitlines()
    # State, Recv-Q, Send-Q (for a listening socket: its backlog), local, peer.
    return int(line.split()[2])


async def test_invalid_configuration_exits_2_with_one_message_per_value(tmp_path: Path) -> None:
    """Every bad variable is named in its own line, and nothing starts."""
    code, _, err = await _run_cli(
        "serve",
        env={
            "COLLAB_PORT": "eighty",
            "COLLAB_JWT_ALGORITHMS": "none",
            "COLLAB_DATABASE_URL": "mysql://db",
            "COLLAB_ROOM_GRACE_S": "-1",
        },
    )
    assert code == 2
    for variable in (
        "COLLAB_PORT",
        "COLLAB_JWT_ALGORITHMS",
        "COLLAB_DATABASE_URL",
        "COLLAB_ROOM_GRACE_S",
    ):
        assert f"  - {variable}: " in err
    code, _, err = await _run_cli("serve", "--port", "70000", env={})
    assert code == 2
    assert "--port: must be between 0 and 65535" in err


async def test_token_command_mints_tokens_the_embedded_server_accepts(tmp_path: Path) -> None:
    """With no secret configured, `collab serve` creates one beside the SQLite file and
    `collab token` in the same environment signs with it."""

    env = {"COLLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'notes.db'}"}
    served = ServerProcess(env, tmp_path / "server.log")
    await served.start()
    await eventually(lambda: "collab token --sub" in served.banner, what="banner complete")
    code, out, _ = await _run_cli(
        "token", "--sub", "alice", "--name", "Alice", "--workspace", "w1:editor", env=env
    )
    try:
        assert code == 0
        minted = out.strip()
        assert (tmp_path / "notes.db.secret").stat().st_mode & 0o777 == 0o600
        async with YClient.connect(f"{served.ws}/ws/docs/w1/n1?token={minted}") as client:
            await client.wait_synced()
        status, _ = await connect_http_error(f"{served.ws}/ws/docs/w2/n1?token={minted}")
        assert status == 403
    finally:
        await served.kill()


async def _serve_stdout(env: dict[str, str]) -> str:
    """Everything `collab serve` prints to stdout from start to a graceful stop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "collab",
        "serve",
        env={**clean_environ(), "COLLAB_PORT": "0", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        first = await asyncio.wait_for(process.stdout.readline(), scaled(20))
        assert b"listening on" in first
        # The banner is one write, made after the signal handlers are installed.
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), scaled(30))
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    return first.decode() + out.decode()


async def test_embedded_default_prints_demo_links(tmp_path: Path) -> None:
    """With no key configured, the server makes its own secret and prints two sign-in links."""
    if static_root() is None:
        pytest.skip("the browser demo is not built")
    banner = await _serve_stdout({"COLLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}"})
    assert banner.count("/?token=") == 2
    assert "Alice: http://" in banner


@pytest.mark.parametrize(
    "keys",
    [
        {"COLLAB_JWT_SECRET": TEST_SECRET},
        {"COLLAB_JWT_KEYS": json.dumps({"2024-06": TEST_SECRET})},
    ],
    ids=["secret", "keys-by-kid"],
)
async def test_operator_keys_print_no_tokens(tmp_path: Path, keys: dict[str, str]) -> None:
    """With a key set by the operator, `collab serve` prints no token at all."""
    banner = await _serve_stdout({"COLLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}", **keys})
    assert "listening on" in banner
    assert "token=" not in banner.replace("?token=JWT", "")
    assert "eyJ" not in banner


async def test_tokens_never_appear_in_logs(server_processes: ProcessFactory) -> None:
    """Neither valid nor rejected tokens are written to any log line, even at DEBUG."""
    served = await server_processes.start(COLLAB_LOG_LEVEL="DEBUG")
    valid = token("secretive")
    forged = valid[:-4] + "AAAA"
    async with YClient.connect(f"{served.ws}/ws/docs/w1/n1?token={valid}") as client:
        await client.wait_synced()
    status, _ = await connect_http_error(f"{served.ws}/ws/docs/w1/n1?token={forged}")
    assert status == 401
    async with aiohttp.ClientSession() as http:
        response = await http.get(
            f"{served.http}/api/v1/docs/w1/n1?token={valid}",
            headers={"Authorization": f"Bearer {valid}"},
        )
        assert response.status == 200
    assert await served.stop() == 0
    log = served.log_text()
    assert "GET /ws/docs/w1/n1 101" in log
    assert "GET /api/v1/docs/w1/n1 200" in log
    assert valid not in log
    assert forged not in log
    assert valid.split(".")[2] not in log


async def test_migrate_is_idempotent(tmp_path: Path) -> None:
    """`collab migrate` brings the schema up to date and can run again."""
    env = {"COLLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    for _ in range(2):
        code, out, err = await _run_cli("migrate", env=env)
        assert code == 0, err
        assert "up to date" in out


async def test_collab_backup_copies_a_running_servers_database_which_serves_the_note(
    server_processes: ProcessFactory, tmp_path: Path
) -> None:
    """`collab backup FILE` beside a running server copies what it has stored (here an edit
    the durable echo confirmed); a server started on the copy serves the note. An existing
    FILE is refused unless --force; a PostgreSQL or memory:// database points elsewhere."""
    served = await server_processes.start()
    copy = tmp_path / "copy.db"
    url = f"{served.ws}/ws/docs/w1/n1?saved=1&token={token()}"
    async with YClient.connect(url) as client:
        await client.wait_synced()
        before = len(client.frames(0))
        client.doc.get("t", type=Text).insert(0, "in the backup")
        await client.flush()
        # The echo of `saved=1` comes once the store holds the edit.
        await client.wait_until(lambda: len(client.frames(0)) > before)
        code, out, err = await _run_cli("backup", str(copy), env=server_processes.env())
    assert code == 0, err
    assert f"to {copy}" in out
    code, _, err = await _run_cli("backup", str(copy), env=server_processes.env())
    assert code == 1
    assert "exists; name a new file, or pass --force" in err
    assert (await _run_cli("backup", str(copy), "--force", env=server_processes.env()))[0] == 0

    restored = await server_processes.start(COLLAB_DATABASE_URL=f"sqlite:///{copy}")
    async with YClient.connect(f"{restored.ws}/ws/docs/w1/n1?token={token()}") as fresh:
        await fresh.wait_until(lambda: str(fresh.doc.get("t", type=Text)) == "in the backup")

    for database_url, advice in (
        ("postgresql://localhost/collab", "pg_dump"),
        ("memory://", "memory:// keeps nothing to back up"),
    ):
        env = {**server_processes.env(), "COLLAB_DATABASE_URL": database_url}
        code, _, err = await _run_cli("backup", str(tmp_path / "other.db"), env=env)
        assert code == 2, err
        assert advice in err


async def test_a_webhook_secret_the_keys_cannot_read_stops_the_start_with_status_2(
    tmp_path: Path,
) -> None:
    """`collab serve` over a database holding a secret sealed with another key exits 2 with
    one line naming the webhook and what to do, and serves nothing."""
    database = tmp_path / "notes.db"
    store = SqliteStore(str(database))
    await store.open()
    try:
        await store.add_endpoint(
            Endpoint(
                id="ep_x",
                url="https://hooks.example.com/x",
                events=("note.created",),
                workspace_id=None,
                secret=SecretSealer(["other-key-" + "o" * 32]).seal(new_secret(), "ep_x"),
                created_at=format_timestamp(),
            )
        )
    finally:
        await store.close()
    env = {
        "COLLAB_DATABASE_URL": f"sqlite:///{database}",
        "COLLAB_JWT_SECRET": TEST_SECRET,
        "COLLAB_PORT": "0",
        "COLLAB_WEBHOOK_SECRET_KEYS": "this-key-" + "t" * 32,
    }

    code, _, err = await _run_cli("serve", env=env)

    assert code == 2
    assert "  - COLLAB_WEBHOOK_SECRET_KEYS: webhook ep_x: its secret is sealed with a key" in err
    assert "add that key" in err
