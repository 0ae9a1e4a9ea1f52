"""The automerge-paper editing trace, or a generated stand-in of the same shape.

The real trace (josephg/editing-traces `sequential_traces/automerge-paper.json.gz`) lives in the
shared data folder beside the repository. Where it is missing, `trace_path()` writes a generated
trace in the same format, with the same operation counts and a similar editing pattern (typing at
a moving cursor, backspace and forward-delete runs, occasional jumps), so that tests and benchmarks
still run; `is_real_trace()` tells them apart.

Format, exactly as the real file: gzip of compact JSON
`{"startContent": str, "endContent": str, "txns": [{"time": str, "patches": [[pos, del, ins]]}]}`,
positions in Unicode code points.
"""

from __future__ import annotations

import atexit
import gzip
import json
import os
import random
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

TRACE_PATH_ENV = "COLLAB_TRACE_PATH"
REAL_TRACE_NAME = "automerge-paper.json.gz"
GENERATED_TRACE_NAME = "generated-automerge-paper.json.gz"

# The real trace's operation counts (see shared/data/automerge-paper.SOURCE.md).
INSERT_COUNT = 182_315
DELETE_COUNT = 77_463
GENERATOR_SEED = 20210419

Patch = tuple[int, int, str]


@dataclass(frozen=True)
class Trace:
    """An editing trace: replaying `txns` on `start_content` yields `end_content`."""

    start_content: str
    end_content: str
    txns: list[list[Patch]]

    @property
    def patch_count(self) -> int:
        return sum(len(patches) for patches in self.txns)


_generated_lock = threading.Lock()
_generated_path: Path | None = None


def real_trace_path() -> Path:
    """Where the real trace is expected: env `COLLAB_TRACE_PATH`, else `<repo>/../shared/data`."""
    override = os.environ.get(TRACE_PATH_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / REAL_TRACE_NAME


def trace_path() -> Path:
    """The real trace if it exists, else a generated stand-in (written once per process)."""
    real = real_trace_path()
    if real.is_file():
        return real
    return generated_trace_path()


def generated_trace_path() -> Path:
    """Path of the generated stand-in, written on first call into a temp dir removed at exit."""
    global _generated_path
    with _generated_lock:
        if _generated_path is None or not _generated_path.is_file():
            directory = Path(tempfile.mkdtemp(prefix="collab-trace-"))
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
            path = directory / GENERATED_TRACE_NAME
            write_trace(path, generate_trace())
            _generated_path = path
        return _generated_path


def is_real_trace(path: Path) -> bool:
    """True when `path` is the real automerge-paper trace, not the generated stand-in."""
    return path.name != GENERATED_TRACE_NAME and path.resolve() == real_trace_path().resolve()


def load_trace(path: Path) -> Trace:
    """Read a trace file (gzip JSON, or plain JSON when the name does not end in `.gz`).

    Raises `ValueError` when the document does not have the trace format.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as file:
        data = json.load(file)
    try:
        start = data["startContent"]
        end = data["endContent"]
        txns = [
            [(int(pos), int(deleted), str(inserted)) for pos, deleted, inserted in txn["patches"]]
            for txn in data["txns"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} is not an editing trace: {exc!r}") from exc
    if not isinstance(start, str) or not isinstance(end, str):
        raise ValueError(f"{path} is not an editing trace: contents are not strings")
    return Trace(start_content=start, end_content=end, txns=txns)


def write_trace(path: Path, trace: Trace) -> None:
    """Write `trace` in the real file's format (gzip of compact JSON, one timestamp per txn)."""
    data = {
        "startContent": trace.start_content,
        "endContent": trace.end_content,
        "txns": [
            {"time": _timestamp(index), "patches": [list(patch) for patch in patches]}
            for index, patches in enumerate(trace.txns)
        ],
    }
    encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(tmp, "wb", compresslevel=1) as file:
        file.write(encoded)
    tmp.replace(path)


def replay(trace: Trace) -> str:
    """Apply every patch of `trace` to its start content (a Python string) and return the text.

    Raises `ValueError` if a patch reaches outside the document.
    """
    text = trace.start_content
    for patches in trace.txns:
        for pos, deleted, inserted in patches:
            if pos < 0 or deleted < 0 or pos + deleted > len(text):
                raise ValueError(
                    f"patch {(pos, deleted, inserted)!r} outside a text of {len(text)}"
                )
            text = text[:pos] + inserted + text[pos + deleted :]
    return text


def _timestamp(index: int) -> str:
    # The real trace's timestamps are synthetic too: all within one second, non-decreasing.
    millis = 219 + index * 294 // 259_778
    return f"2021-04-19T06:06:58.{millis:03d}Z"


_WORDS = (
    "the of and to a in is that for we with as on are this by be an which can it from each "
    "document operation replica concurrent insertion deletion element list cursor order "
    "timestamp algorithm consistency convergence network state update merge conflict text "
    "editor character sequence identifier causal history peer node tree JSON CRDT OT RGA "
    "Lamport clock vector commutative idempotent semantics proof theorem lemma definition"
).split()
_LATEX = (
    "\\section{",
    "\\subsection{",
    "\\cite{",
    "\\emph{",
    "\\texttt{",
    "\\label{",
    "\\ref{",
    "$\\mathsf{",
)


class _GapBuffer:
    """Text with a cursor: edits at the cursor cost O(1), moving it costs the distance."""

    def __init__(self) -> None:
        self.left: list[str] = []
        self.right: list[str] = []  # reversed: right[-1] is the character after the cursor

    def __len__(self) -> int:
        return len(self.left) + len(self.right)

    @property
    def cursor(self) -> int:
        return len(self.left)

    def move(self, pos: int) -> None:
        left, right = self.left, self.right
        if pos < len(left):
            moved = left[pos:]
            del left[pos:]
            moved.reverse()
            right.extend(moved)
        elif pos > len(left):
            count = pos - len(left)
            moved = right[-count:]
            del right[-count:]
            moved.reverse()
            left.extend(moved)

    def text(self) -> str:
        return "".join(self.left) + "".join(reversed(self.right))


def generate_trace(
    seed: int = GENERATOR_SEED,
    insert_count: int = INSERT_COUNT,
    delete_count: int = DELETE_COUNT,
) -> Trace:
    """A deterministic synthetic trace of single-character ASCII edits, one patch per txn.

    It has exactly `insert_count` inserts and `delete_count` deletes, starts empty, and mimics
    the real trace's locality: about 69% inserts at the cursor, 18% backspaces, 11% forward
    deletes, 2% jumps of the cursor (mostly short, sometimes anywhere).
    """
    if delete_count > insert_count:
        raise ValueError("a trace that starts empty cannot delete more than it inserts")
    rng = random.Random(seed)
    buffer = _GapBuffer()
    txns: list[list[Patch]] = []
    inserts_left, deletes_left = insert_count, delete_count
    pending = ""  # characters of the word being typed
    mean_typing_burst, mean_delete_burst = 14, 5

    while inserts_left or deletes_left:
        length = len(buffer)
        if length and rng.random() < 0.2:
            _jump(rng, buffer)
        # Pick a burst kind in proportion to the work left, scaled by the mean burst sizes.
        delete_weight = deletes_left / mean_delete_burst
        insert_weight = inserts_left / mean_typing_burst
        deleting = length > 0 and rng.random() * (delete_weight + insert_weight) < delete_weight
        if deleting:
            burst = min(1 + int(rng.expovariate(1 / (mean_delete_burst - 1))), deletes_left)
            backspace = buffer.cursor > 0 and (buffer.cursor == length or rng.random() < 0.62)
            for _ in range(burst):
                if backspace and buffer.left:
                    buffer.left.pop()
                    txns.append([(buffer.cursor, 1, "")])
                elif not backspace and buffer.right:
                    buffer.right.pop()
                    txns.append([(buffer.cursor, 1, "")])
                else:
                    break
                deletes_left -= 1
        elif inserts_left:
            burst = min(1 + int(rng.expovariate(1 / (mean_typing_burst - 1))), inserts_left)
            for _ in range(burst):
                if not pending:
                    pending = _next_word(rng)
                char, pending = pending[0], pending[1:]
                txns.append([(buffer.cursor, 0, char)])
                buffer.left.append(char)
                inserts_left -= 1
    return Trace(start_content="", end_content=buffer.text(), txns=txns)


def _jump(rng: random.Random, buffer: _GapBuffer) -> None:
    length = len(buffer)
    if rng.random() < 0.04:
        target = rng.randrange(length + 1)
    else:
        # Mostly short hops (median distance in the real trace is ~46 characters).
        distance = int(2 ** rng.uniform(0, 10.5))
        target = buffer.cursor + (distance if rng.random() < 0.5 else -distance)
    buffer.move(max(0, min(length, target)))


def _next_word(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.04:
        return "\n"
    if roll < 0.07:
        return rng.choice(_LATEX) + rng.choice(_WORDS) + "} "
    if roll < 0.10:
        return rng.choice(_WORDS) + ". "
    if roll < 0.12:
        return rng.choice(_WORDS) + ", "
    return rng.choice(_WORDS) + " "
