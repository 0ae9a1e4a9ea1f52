"""Plain-text tables: right-aligned columns of fixed width, and "name  value" lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

MIB = 2**20


@dataclass(frozen=True)
class Column:
    name: str
    width: int
    cell: Callable[[dict[str, Any]], str]


def print_header(columns: Sequence[Column]) -> None:
    print(" ".join(column.name.rjust(column.width) for column in columns))


def print_row(columns: Sequence[Column], row: dict[str, Any]) -> None:
    print(" ".join(column.cell(row).rjust(column.width) for column in columns), flush=True)


def print_table(columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> None:
    print_header(columns)
    for row in rows:
        print_row(columns, row)


def print_pairs(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


def fixed(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(value: float | None, reference: float | None) -> str:
    """`value / reference` as "1.23x", or "-" when either is missing."""
    if value is None or not reference:
        return "-"
    return f"{value / reference:.2f}x"


def heading(text: str) -> None:
    print(f"\n== {text} ==", flush=True)
