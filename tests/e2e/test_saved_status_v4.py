"""The `@y/websocket` 4 provider (on `@y/y` 14) against a `collab serve` process: with
`params: { saved: '1' }` its sync status reaches "synced" after each local edit; without, its
local edits stay unconfirmed.

`tests/js-v4/saved-status.mjs` runs both clients and prints what it observed; it needs
`npm ci --prefix tests/js-v4` (its own packages, apart from the yjs 13 clients of `tests/`).
The registry's newest v4 (4.0.0-3) has no `provider.syncStatus` yet: the script applies that
API's rule (every local update's ids received back from the server) with `@y/y`'s functions.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ProcessFactory
from tests.e2e.conftest import token
from tests.support.servers import clean_environ
from tests.support.waiting import scaled

JS_DIR = Path(__file__).resolve().parents[1] / "js-v4"
INSTALL_HINT = "npm ci --prefix tests/js-v4"
WAIT_MS = 10_000
RUN_TIMEOUT_S = 60

pytestmark = [pytest.mark.node, pytest.mark.timeout(120)]


async def observe(ws_url: str, room: str) -> dict[str, Any]:
    """Run the script (a saved client and a plain one on `room`) and return its report."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js 20+ is not installed (`node` is not on PATH)")
    for package in ("@y/websocket", "@y/y", "ws"):
        if not (JS_DIR / "node_modules" / package / "package.json").is_file():
            pytest.fail(f"tests/js-v4/node_modules lacks {package}: run `{INSTALL_HINT}`")
    process = await asyncio.create_subprocess_exec(
        node,
        "saved-status.mjs",
        f"{ws_url}/ws/docs",
        room,
        token("saver", {"w1": "editor"}),
        token("plain", {"w1": "editor"}),
        str(int(scaled(WAIT_MS / 1000) * 1000)),
        cwd=JS_DIR,
        env=clean_environ(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), scaled(RUN_TIMEOUT_S))
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    lines = stdout.decode().splitlines()
    assert lines, f"the script printed nothing (exit {process.returncode}):\n{stderr.decode()}"
    report: dict[str, Any] = json.loads(lines[-1])
    assert process.returncode == 0, f"{report}\n{stderr.decode()[-3000:]}"
    return report


async def test_v4_sync_status_confirms_local_edits_only_with_saved(
    server_processes: ProcessFactory,
) -> None:
    """The saved client is synced before its edit, unsynced right after it, synced again once
    collab echoed it; the plain client's own edit is never confirmed, though both converge."""
    server = await server_processes.start()
    report = await observe(server.ws, "w1/v4")
    synced = {"connected": True, "receivedInitialSync": True, "localUpdatesSynced": True}
    assert report["initial"] | synced == report["initial"], report
    assert report["initial"]["synced"] is True, report
    assert report["afterEdit"]["localUpdatesSynced"] is False, report
    assert report["saved"]["synced"] is True, report
    assert report["plain"]["connected"] is True, report
    assert report["plain"]["receivedInitialSync"] is True, report
    assert report["plain"]["localUpdatesSynced"] is False, report
    assert report["plain"]["synced"] is False, report
    assert report["texts"] == {"saved": "abc", "plain": "abc"}, report
    print(f"@y/websocket 4 against collab: {json.dumps(report)}")
