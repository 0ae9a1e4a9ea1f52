"""The load generator runs end to end at a tiny size: a server process and real Yjs encodings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.waiting import scaled

REPO_ROOT = Path(__file__).resolve().parents[2]
LOADTESTS = REPO_ROOT / "loadtests"

pytestmark = pytest.mark.node


def test_fanout_delivers_every_update_at_a_tiny_size(tmp_path: Path) -> None:
    """A 2 rooms x 3 clients fan-out step exits 0 and every sent update reaches every peer."""
    if not (LOADTESTS / "node_modules").is_dir():
        pytest.fail("loadtests/node_modules is missing: run `npm ci --prefix loadtests`")
    results_path = tmp_path / "fanout.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(LOADTESTS / "run.py"),
            "fanout",
            "--rooms=2",
            "--clients=3",
            "--rates=5",
            "--step-s=2",
            f"--drain-s={scaled(10)}",
            f"--json={results_path}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=scaled(90),
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads(results_path.read_text())
    [step] = results["steps"]
    assert step["sent"] == 2 * 5 * 2
    assert step["expected"] == step["sent"] * 2
    assert step["received"] == step["expected"]
    assert step["closed"] == {}
    # The machine's wake-up cost is recorded with every run, to read low-rate CPU figures by.
    wakeup = results["machine"]["wakeup"]
    assert wakeup is not None, "the wake-up probe did not run"
    assert wakeup["warm_us"] > 0
    assert wakeup["after_5ms_idle_us"] > 0
