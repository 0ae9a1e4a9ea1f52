"""Where things are: the repository, this directory, the baselines' environments, the trace."""

from __future__ import annotations

from pathlib import Path

LOADTESTS_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = LOADTESTS_DIR.parent
BASELINES_DIR = LOADTESTS_DIR / "baselines"
NODE_MODULES = LOADTESTS_DIR / "node_modules"
BASELINES_VENV_PYTHON = LOADTESTS_DIR / ".venv-baselines" / "bin" / "python"
TRACE_PATH = REPO_ROOT.parent / "shared/data/automerge-paper.json.gz"
SETUP_HINT = "run loadtests/setup.sh"
