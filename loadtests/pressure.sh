#!/usr/bin/env bash
# The cursor-presence and join-storm configurations of issue 23, each against collab and the
# baselines in one invocation, raw JSON to loadtests/results/pressure/<config>-<LABEL>.json and
# the printed tables to <config>-<LABEL>.txt beside it.
#
#   loadtests/pressure.sh LABEL [CONFIG...]     (CONFIG: awareness-300x1 awareness-500x1
#                                                awareness-300x5 joinstorm-20mb joinstorm-1000j;
#                                                default: all five, ~12 min)
#
# Runs from the repository root with the repository's Python (.venv/bin/python if present).
# Exit status: that of the last run that failed, else 0; every configuration runs anyway.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
label="${1:?usage: loadtests/pressure.sh LABEL [CONFIG...]}"
shift
configs=("$@")
if [ ${#configs[@]} -eq 0 ]; then
  configs=(awareness-300x1 awareness-500x1 awareness-300x5 joinstorm-20mb joinstorm-1000j)
fi
python="$root/.venv/bin/python"
[ -x "$python" ] || python=python
out="$here/results/pressure"
mkdir -p "$out"
status=0
for config in "${configs[@]}"; do
  case "$config" in
    awareness-300x1) args=(awareness --clients 300 --hz 1 --step-s 20 --servers collab,node,pycrdt,relay) ;;
    awareness-500x1) args=(awareness --clients 500 --hz 1 --step-s 20 --servers collab,node,pycrdt,relay) ;;
    awareness-300x5) args=(awareness --clients 300 --hz 5 --step-s 20 --servers collab,node,pycrdt,relay) ;;
    joinstorm-20mb) args=(joinstorm --doc-mb 20 --joiners 150 --window-s 1 --servers collab,node,pycrdt) ;;
    joinstorm-1000j) args=(joinstorm --doc-mb 0.3 --joiners 1000 --window-s 1 --servers collab,node,pycrdt) ;;
    *) echo "pressure.sh: unknown configuration $config" >&2; exit 2 ;;
  esac
  (cd "$root" && "$python" loadtests/run.py "${args[@]}" --json "$out/$config-$label.json") \
    2>&1 | tee "$out/$config-$label.txt"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    echo "pressure.sh: $config exited $rc" >&2
    status=$rc
  fi
done
exit $status
