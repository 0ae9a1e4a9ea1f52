#!/usr/bin/env bash
# Installs what the load tests need, from the package registries (nothing is vendored):
#   - the Node generator's packages and the reference y-websocket server (@y/websocket-server,
#     pinned in package.json / package-lock.json): npm ci --prefix loadtests
#   - pycrdt-websocket and the ASGI server it runs on, in a venv of their own
#     (loadtests/.venv-baselines), since they may pin another pycrdt than collab's.
# collab itself and the relay baseline run on the repository's Python environment
# (pip install -e '.[test]'). Safe to run again: each step is skipped or a no-op when done.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

command -v node >/dev/null || { echo "setup.sh: install Node.js >= 20 first" >&2; exit 1; }
npm ci --prefix "$here" --no-audit --no-fund

venv="$here/.venv-baselines"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/baselines/requirements.txt"
"$venv/bin/python" -c 'import pycrdt.websocket, uvicorn, uvloop' \
  && echo "setup.sh: baselines ready ($venv)"
