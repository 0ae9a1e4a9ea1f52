"""The browser demo (clients/js-demo) in real headless Chromium against a `collab serve` process.

`clients/js-demo/e2e/demo.mjs` drives two browser contexts (alice and bob) with playwright-core
and Debian's Chromium; it prints one `screenshot: PATH` line per screenshot and a JSON summary
as its last line. Needs `npm ci --prefix clients/js-demo` and `/usr/bin/chromium` (or
`CHROMIUM_PATH`).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from collab.settings import Secret, Settings
from tests.conftest import ProcessFactory, token_for
from tests.support.servers import clean_environ
from tests.support.waiting import scaled

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / "clients" / "js-demo"
STATIC_DIR = REPO / "collab" / "web" / "static"
INSTALL_HINT = "npm ci --prefix clients/js-demo"
CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
BROWSER_SECRET = "browser-demo-secret-0123456789abcdef-0123456789abcdef"
BUNDLE_FILES = ("index.html", "assets/app.js", "assets/app.css")
SCENARIOS = [
    "open-deep-link",
    "concurrent-typing",
    "remote-cursor",
    "presence",
    "mention-autocomplete",
    "meta-and-assignment",
    "notifications",
    "offline-edits-merge",
    "reload-keeps-session",
    "new-note",
    "share-private",
    "version-history",
    "search-and-filter",
    "trash-and-restore",
    "load-more",
    "no-token-page",
]
DEMO_TIMEOUT_S = 240
CATALOG_INTERVAL_MS = "200"

pytestmark = [pytest.mark.node, pytest.mark.timeout(300)]


def _require_node_modules(*packages: str) -> str:
    """Return the `node` executable; fail naming the command to run when anything is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js 20+ is not installed (`node` is not on PATH)")
    missing = [p for p in packages if not (DEMO_DIR / "node_modules" / p).is_dir()]
    if missing:
        pytest.fail(
            f"clients/js-demo/node_modules lacks {', '.join(missing)}: run `{INSTALL_HINT}`"
        )
    return node


async def _run(argv: list[str], env: dict[str, str], timeout_s: float) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=DEMO_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), scaled(timeout_s))
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(
            f"{' '.join(argv)} did not finish within {scaled(timeout_s)} s"
        ) from None
    assert process.returncode is not None
    return process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")


async def test_committed_bundle_matches_the_sources(tmp_path: Path) -> None:
    """`npm run build` of clients/js-demo reproduces the committed collab/web/static exactly."""
    node = _require_node_modules("esbuild")
    out = tmp_path / "static"
    code, stdout, stderr = await _run(
        [node, "scripts/build.mjs"], {**clean_environ(), "STATIC_DIR": str(out)}, 60
    )
    assert code == 0, f"build failed:\n{stdout}\n{stderr}"
    stale = [f for f in BUNDLE_FILES if (out / f).read_bytes() != (STATIC_DIR / f).read_bytes()]
    assert not stale, (
        f"collab/web/static is stale ({', '.join(stale)}): run `npm run build` in clients/js-demo"
    )


async def test_two_users_collaborate_in_real_browsers(
    server_processes: ProcessFactory, tmp_path: Path
) -> None:
    """Two Chromium users on one note converge, see each other's carets and presence, get
    notifications live, and merge edits made offline; the sidebar follows the catalog live
    (new notes, titles), searches and filters it, and a note trashed by one user closes the
    other's editor, moves to the trash and comes back on restore."""
    node = _require_node_modules("playwright-core", "yjs", "y-websocket")
    if not os.access(CHROMIUM_PATH, os.X_OK):
        pytest.fail(
            f"no Chromium at {CHROMIUM_PATH}: apt-get install chromium (or set CHROMIUM_PATH)"
        )
    server = await server_processes.start(
        COLLAB_DATABASE_URL=f"sqlite:///{tmp_path / 'c.db'}",
        COLLAB_JWT_SECRET=BROWSER_SECRET,
        # The sidebar's titles, search and tags follow the catalog: index edits quickly.
        COLLAB_CATALOG_INTERVAL_MS=CATALOG_INTERVAL_MS,
    )
    settings = Settings(jwt_secret=Secret(BROWSER_SECRET))
    tokens = {
        who: token_for(settings, who, {"w1": "editor"}, name=who.title())
        for who in ("alice", "bob")
    }
    artifacts = tmp_path / "artifacts"
    env = {
        **clean_environ(),
        "BASE_URL": server.http,
        "TOKEN_ALICE": tokens["alice"],
        "TOKEN_BOB": tokens["bob"],
        "ARTIFACTS_DIR": str(artifacts),
        "CHROMIUM_PATH": CHROMIUM_PATH,
    }
    code, stdout, stderr = await _run([node, "e2e/demo.mjs"], env, DEMO_TIMEOUT_S)
    lines = stdout.splitlines()
    for line in lines:
        if line.startswith("screenshot: "):
            print(line)
    context = (
        f"stdout:\n{stdout[-6000:]}\nstderr:\n{stderr[-4000:]}\n"
        f"server log:\n{server.log_text()[-3000:]}"
    )
    assert lines, f"the demo script printed nothing\n{context}"
    summary: dict[str, Any] = json.loads(lines[-1])
    assert code == 0, f"the demo script failed (exit {code})\n{context}"
    assert summary["ok"] is True, context
    assert [s["name"] for s in summary["scenarios"]] == SCENARIOS
    assert all(s["ok"] for s in summary["scenarios"]), context
    assert summary["page_errors"] == []
    merged = summary["texts"]["offline-edits-merge"]
    assert "[Alice, online]" in merged
    assert "[Bob, offline]" in merged
    shots = [Path(p) for p in summary["screenshots"]]
    assert len(shots) >= 2 * len(SCENARIOS)
    assert all(p.is_file() and p.stat().st_size > 0 for p in shots)
