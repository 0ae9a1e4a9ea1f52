"""The browser demo against what another user of the note sends, in real headless Chromium.

Any client of a note may put any JSON object in its awareness state (the server only checks
that it is an object or null) and the server relays it to every editor of the note. The demo
draws remote carets only from states of the shape y-prosemirror reads, with checked colours
(`clients/js-demo/src/remote-carets.js`):

- a `user.color` followed by `;position:fixed;…` must not restyle the page (it was pasted into
  style attributes and covered the victim's whole window);
- a `user` that is not an object, or a `cursor` whose anchor is not a relative position, must
  not stop the editor (y-prosemirror threw on every remote change, the victim stopped seeing
  others' edits, and their next keystroke wrote the stale view back, deleting them).

`tests/support/js/hostile_demo.mjs` runs one scenario: alice in headless Chromium on note
w1/n1, mallory (another editor of w1) and bob as stock y-websocket clients in Node.
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
from tests.support.servers import ServerProcess, clean_environ
from tests.support.waiting import scaled

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "tests" / "support" / "js" / "hostile_demo.mjs"
DEMO_DIR = REPO / "clients" / "js-demo"
CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SECRET = "hostile-demo-secret-0123456789abcdef-0123456789abcdef"
DRIVER_TIMEOUT_S = 120

pytestmark = [pytest.mark.node, pytest.mark.timeout(240)]


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js 20+ is not installed (`node` is not on PATH)")
    if not (DEMO_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.fail(
            "clients/js-demo/node_modules lacks playwright-core: npm ci --prefix clients/js-demo"
        )
    if not (REPO / "tests" / "node_modules" / "y-websocket").is_dir():
        pytest.fail("tests/node_modules lacks y-websocket: npm ci --prefix tests")
    if not os.access(CHROMIUM_PATH, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM_PATH}")
    return node


async def _server(server_processes: ProcessFactory, tmp_path: Path) -> ServerProcess:
    return await server_processes.start(
        COLLAB_DATABASE_URL=f"sqlite:///{tmp_path / 'demo.db'}",
        COLLAB_JWT_SECRET=SECRET,
        COLLAB_CATALOG_INTERVAL_MS="200",
    )


async def _scenario(server: ServerProcess, scenario: str) -> dict[str, Any]:
    """Run the driver for `scenario`; its result object."""
    settings = Settings(jwt_secret=Secret(SECRET))
    env = {
        **clean_environ(),
        "BASE_URL": server.http,
        "SCENARIO": scenario,
        "CHROMIUM_PATH": CHROMIUM_PATH,
        **{
            f"TOKEN_{who.upper()}": token_for(settings, who, {"w1": "editor"}, name=who.title())
            for who in ("alice", "mallory", "bob")
        },
    }
    process = await asyncio.create_subprocess_exec(
        _node(),
        str(DRIVER),
        cwd=DRIVER.parent,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), scaled(DRIVER_TIMEOUT_S))
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"hostile_demo.mjs {scenario} did not finish") from None
    lines = out.decode(errors="replace").splitlines()
    context = f"stdout:\n{out.decode()[-3000:]}\nstderr:\n{err.decode()[-3000:]}"
    assert lines, f"driver printed nothing\n{context}"
    summary = json.loads(lines[-1])
    assert summary["ok"] is True, f"driver failed: {summary.get('error')}\n{context}"
    result: dict[str, Any] = summary["result"]
    return result


@pytest.mark.parametrize("when", ["early", "late"])
async def test_remote_awareness_colour_cannot_restyle_the_victims_page(
    server_processes: ProcessFactory, tmp_path: Path, when: str
) -> None:
    """Mallory sets `user.color` to `#000;position:fixed;top:0;left:0;width:100vw;height:100vh;
    z-index:2147483647;pointer-events:auto;…` (with a valid cursor in the note). Alice's page
    must not let that text add CSS declarations: no remote caret, label or selection is
    position:fixed, and her "+ New note" button and the middle of her window are still hers to
    click. (`early`: set before alice opens the note, so the caret and its label are built with
    it; `late`: changed after her editor shows mallory's honest caret, which restyles the
    selection highlight.)"""
    server = await _server(server_processes, tmp_path)
    result = await _scenario(server, f"awareness-color-css:{when}")
    detail = json.dumps(result, indent=1)
    assert result["fixed_remote_elements"] == 0, (
        f"another user's awareness colour injected CSS into alice's page:\n{detail}"
    )
    assert result["new_note_button_hit"] is True, (
        f"alice's '+ New note' button is covered by another user's cursor decoration:\n{detail}"
    )
    assert result["center_covered_by_remote_caret"] is False, detail
    assert result["page_errors"] == [], detail


@pytest.mark.parametrize("variant", ["user-string", "cursor-null-anchor"])
async def test_malformed_remote_awareness_does_not_break_the_editor_or_lose_edits(
    server_processes: ProcessFactory, tmp_path: Path, variant: str
) -> None:
    """Mallory's awareness state is a JSON object, as the server requires, but its `user` is a
    string (`{"user": "mallory", "cursor": {…valid…}}`) or its cursor's anchor is null
    (`{"user": {…}, "cursor": {"anchor": null, "head": null}}`). Bob then adds a paragraph and
    alice types at the end of the note. Alice's editor must still show bob's paragraph, no
    uncaught error may occur on her page, and the shared document must keep both edits."""
    server = await _server(server_processes, tmp_path)
    result = await _scenario(server, f"awareness-malformed:{variant}")
    detail = json.dumps(result, indent=1)
    assert result["page_errors"] == [], f"uncaught errors on alice's page:\n{detail}"
    assert result["alice_saw_bob_edit"] is True, (
        f"alice's editor stopped showing remote edits after mallory's awareness state:\n{detail}"
    )
    assert result["bob_saw_alice_edit"] is True, detail
    assert result["shared_keeps_bob_edit"] is True, (
        f"alice's typing deleted bob's paragraph from the shared document:\n{detail}"
    )
