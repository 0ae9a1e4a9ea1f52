"""The editing trace helper: the real trace and the generated stand-in both replay correctly."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.support.trace import (
    DELETE_COUNT,
    INSERT_COUNT,
    Trace,
    generate_trace,
    generated_trace_path,
    is_real_trace,
    load_trace,
    real_trace_path,
    replay,
    trace_path,
)


def test_generated_trace_replays_to_its_end_content() -> None:
    """The generated stand-in, read back from its file, replays on a string to its endContent."""
    path = generated_trace_path()
    assert not is_real_trace(path)
    trace = load_trace(path)
    assert trace.start_content == ""
    assert replay(trace) == trace.end_content


def test_generated_trace_has_the_real_format_and_counts() -> None:
    """The stand-in's file has the real keys and its single-char ASCII insert/delete counts."""
    with gzip.open(generated_trace_path(), "rt", encoding="utf-8") as file:
        raw = json.load(file)
    assert set(raw) == {"startContent", "endContent", "txns"}
    assert all(set(txn) == {"time", "patches"} for txn in raw["txns"])
    patches = [patch for txn in raw["txns"] for patch in txn["patches"]]
    assert all(len(txn["patches"]) == 1 for txn in raw["txns"])
    assert all(
        isinstance(pos, int) and deleted in (0, 1) and len(inserted) == 1 - deleted
        for pos, deleted, inserted in patches
    )
    assert sum(1 for _, _, inserted in patches if inserted) == INSERT_COUNT
    assert sum(deleted for _, deleted, _ in patches) == DELETE_COUNT
    assert raw["endContent"].isascii()
    assert len(raw["endContent"]) == INSERT_COUNT - DELETE_COUNT


def test_generated_trace_is_deterministic() -> None:
    """Two generations with the same seed give the same trace; another seed gives another."""
    small = generate_trace(insert_count=2_000, delete_count=800)
    assert small == generate_trace(insert_count=2_000, delete_count=800)
    assert small != generate_trace(seed=1, insert_count=2_000, delete_count=800)
    assert replay(small) == small.end_content


def test_replay_rejects_a_patch_outside_the_document() -> None:
    """A patch that deletes past the end of the text raises ValueError."""
    with pytest.raises(ValueError, match="outside"):
        replay(Trace(start_content="ab", end_content="", txns=[[(1, 2, "")]]))


def test_real_trace_replays_to_its_end_content() -> None:
    """The real automerge-paper trace replays on a string to its endContent."""
    if not real_trace_path().is_file():
        pytest.skip(f"real trace not found at {real_trace_path()} (set COLLAB_TRACE_PATH)")
    path = trace_path()
    assert is_real_trace(path)
    trace = load_trace(path)
    assert trace.patch_count == INSERT_COUNT + DELETE_COUNT
    assert replay(trace) == trace.end_content
