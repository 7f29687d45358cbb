"""What the loader repaired in a user's data, as records: each repair is logged as before and
also carried as a `Repair` (on the log record as `record.repair`, and in the list of an open
`collect()`), so a run can list them in provenance.json and tests can read counts, not wording.

Kinds: out_of_order, duplicates, empty_keys, missing_columns, naive_time, row_counter,
missing_cells, sentinels, infinite, out_of_range (data.valid_range), trace_codes, text_numbers,
not_numbers, compass_points, bad_directions, one_hot, absent_category, dropped_column, gaps.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass

Count = int | dict[str, int]


@dataclass(frozen=True)
class Repair:
    """One repair: its kind (`duplicates`, `sentinels`, ...), the file (or, for gaps, the
    series) it was found in, its column when it concerns one, and how many cells, rows or
    columns it changed; a {column: n} dict when one message counts several columns."""

    kind: str
    source: str | None
    column: str | None
    count: Count


# collected in note() rather than by a logging handler: a logger's level (WARNING when a run is
# started from Python) would otherwise drop the INFO repairs from the record
_OPEN: ContextVar[list[Repair] | None] = ContextVar("forecast_repairs", default=None)


def note(logger: logging.Logger, level: int, kind: str, count: int | Mapping, message: str,
         *args, source: object = None, column: object = None) -> Repair:
    """Log `message % args` on `logger` as before, with the repair attached and collected."""
    repair = Repair(kind, _text(source), _text(column), _count(count))
    logger.log(level, message, *args, extra={"repair": repair}, stacklevel=2)
    _add(repair)
    return repair


def record(kind: str, count: int | Mapping, *, source: object = None, column: object = None,
           once: bool = False) -> None:
    """A repair collected without a log line (one said already, or said by an earlier warning);
    `once`: not when an equal one is collected (the same file read again, or in batches)."""
    _add(Repair(kind, _text(source), _text(column), _count(count)), once)


def _add(repair: Repair, once: bool = False) -> None:
    found = _OPEN.get()
    # a count of 0 changed nothing (e.g. directions all in degrees): nothing to list
    if found is not None and repair.count and not (once and repair in found):
        found.append(repair)


@contextmanager
def collect() -> Iterator[list[Repair]]:
    """The repairs noted inside the block, at any logger level; a collection opened inside
    another one also adds its repairs to the outer one."""
    outer = _OPEN.get()
    found: list[Repair] = []
    token = _OPEN.set(found)
    try:
        yield found
    finally:
        _OPEN.reset(token)
        if outer is not None:
            outer.extend(found)


def as_json(repairs: list[Repair]) -> list[dict]:
    return [asdict(r) for r in repairs]


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _count(count: int | Mapping) -> Count:
    """numpy integers and column labels made JSON-safe: int and str."""
    if isinstance(count, Mapping):
        return {str(k): int(v) for k, v in count.items()}
    return int(count)
