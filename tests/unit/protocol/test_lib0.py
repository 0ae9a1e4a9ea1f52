"""The strict lib0 reader: it reads what pycrdt writes and refuses anything malformed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import write_message, write_var_uint

from collab.errors import ProtocolError
from collab.protocol.lib0 import MAX_VAR_UINT, Reader

FUZZ = settings(max_examples=500, deadline=None)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 16_383, 16_384, 2**32, MAX_VAR_UINT])
def test_var_uint_written_by_pycrdt_reads_back(value: int) -> None:
    """A var-uint encoded by pycrdt's `write_var_uint` reads back as the same number."""
    reader = Reader(write_var_uint(value))
    assert reader.read_var_uint() == value
    assert reader.at_end


@FUZZ
@given(st.integers(min_value=0, max_value=MAX_VAR_UINT))
def test_any_var_uint_up_to_the_javascript_limit_round_trips(value: int) -> None:
    """Every integer a JavaScript client can write reads back unchanged."""
    assert Reader(write_var_uint(value)).read_var_uint() == value


@FUZZ
@given(st.binary(max_size=300))
def test_var_bytes_written_by_pycrdt_read_back(payload: bytes) -> None:
    """A length-prefixed byte array from pycrdt's `write_message` reads back unchanged."""
    reader = Reader(write_message(payload) + b"\x07")
    assert reader.read_var_bytes() == payload
    assert reader.remaining == 1


@FUZZ
@given(st.text(max_size=100))
def test_var_string_reads_utf8_by_byte_length(text: str) -> None:
    """A var-string whose prefix counts UTF-8 bytes reads back as the same text."""
    encoded = text.encode()
    assert Reader(write_var_uint(len(encoded)) + encoded).read_var_string() == text


def test_reader_tracks_position_across_fields() -> None:
    """`remaining` and `at_end` follow the reads through consecutive fields."""
    reader = Reader(write_var_uint(300) + write_message(b"abc"))
    assert reader.remaining == 6
    assert reader.read_var_uint() == 300
    assert reader.remaining == 4
    assert not reader.at_end
    assert reader.read_var_bytes() == b"abc"
    assert reader.at_end
    reader.expect_end("the test fields")


def test_empty_buffer_is_a_truncated_var_uint() -> None:
    """Reading a number from no bytes raises ProtocolError saying it is cut off."""
    with pytest.raises(ProtocolError, match="truncated message: a variable-length integer"):
        Reader(b"").read_var_uint()


@pytest.mark.parametrize("buffer", [b"\x80", b"\xff\xff", b"\x81\x80\x80"])
def test_var_uint_whose_last_byte_continues_is_truncated(buffer: bytes) -> None:
    """A var-uint that ends on a continuation byte raises ProtocolError (cut off)."""
    with pytest.raises(ProtocolError, match="cut off"):
        Reader(buffer).read_var_uint()


def test_var_uint_longer_than_eight_bytes_is_refused() -> None:
    """Nine bytes with continuation bits raise ProtocolError instead of growing without bound."""
    with pytest.raises(ProtocolError, match="too long"):
        Reader(b"\xff" * 8 + b"\x01").read_var_uint()


def test_var_uint_above_the_javascript_safe_integer_is_refused() -> None:
    """2**53 fits in eight bytes but no JavaScript client can write it: ProtocolError."""
    with pytest.raises(ProtocolError, match="out of range"):
        Reader(write_var_uint(MAX_VAR_UINT + 1)).read_var_uint()


def test_length_prefix_beyond_the_end_is_refused() -> None:
    """A byte array announcing more bytes than remain raises ProtocolError naming both sizes."""
    with pytest.raises(ProtocolError, match="announces 10 bytes but 3 remain"):
        Reader(write_var_uint(10) + b"abc").read_var_bytes()


def test_invalid_utf8_string_is_refused() -> None:
    """A var-string that is not UTF-8 raises ProtocolError, not UnicodeDecodeError."""
    with pytest.raises(ProtocolError, match="not valid UTF-8"):
        Reader(write_message(b"ab\xff\xfe")).read_var_string()


def test_trailing_bytes_are_reported_with_their_count() -> None:
    """`expect_end` raises ProtocolError counting the unread bytes and naming the context."""
    reader = Reader(b"\x01\x02\x03\x04")
    reader.read_var_uint()
    with pytest.raises(ProtocolError, match="3 unexpected trailing bytes after the header"):
        reader.expect_end("the header")


@FUZZ
@given(st.binary(max_size=64), st.lists(st.sampled_from(["uint", "bytes", "string"]), max_size=8))
def test_reading_arbitrary_bytes_raises_only_protocol_error(
    buffer: bytes, reads: list[str]
) -> None:
    """Any sequence of reads over any bytes returns values or raises ProtocolError, nothing else."""
    reader = Reader(buffer)
    try:
        for kind in reads:
            if kind == "uint":
                assert 0 <= reader.read_var_uint() <= MAX_VAR_UINT
            elif kind == "bytes":
                assert len(reader.read_var_bytes()) <= len(buffer)
            else:
                assert isinstance(reader.read_var_string(), str)
    except ProtocolError:
        pass
    assert 0 <= reader.remaining <= len(buffer)
