"""Two passes over a long Parquet file in record batches, never the whole table in memory.

Pass 1 (`scan_grid`) reads the series and time columns: the sorted series names, each series'
first and last time and row count, and the steps between its consecutive rows -> the regular
time grid. Pass 2 (`write_values`) reads the feature columns and writes each row into its
(series, step) cell of an (N, T, F) array, normally an np.memmap.

Keys are read as the in-memory loader reads them (`tidy.series`, `files.parse_times`),
so both give the same ids and times.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from forecast.data import files, tidy
from forecast.data.columns import FLOAT32_MAX
from forecast.data.mapped import release
from forecast.data.panel import NO_STEP, check_one_step, inferred_offset, off_grid_message, offset
from forecast.data.repair_log import note
from forecast.data.sources import SERIES, TIME

log = logging.getLogger(__name__)

BATCH_ROWS = 65_536


@dataclass
class Keys:
    """The series and time cells of one record batch (R rows)."""

    names: list[str]  # (U,) series names of the batch
    codes: np.ndarray  # (R,) int64 into names where ok; -1 where the series cell is empty
    times: np.ndarray  # (R,) int64 ns since the epoch (UTC when zoned); valid where ok
    ok: np.ndarray  # (R,) bool: both keys present
    unit: str  # the time column's resolution after parsing ('us', 'ns', ...)
    tz: object  # its time zone, None for naive times


def batch_keys(batch: pa.RecordBatch, series_col: str, time_col: str, tz: str | None,
               source: str) -> Keys:
    """The series and time cells of a record batch, read as the in-memory loader reads them."""
    column = batch.column(series_col)
    encoded = column if pa.types.is_dictionary(column.type) else column.dictionary_encode()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    times = files.parse_times(batch.column(time_col).to_pandas(), tz, source, time_col)
    index = pd.DatetimeIndex(times)
    ok = (codes >= 0) & ~np.asarray(index.isna())
    names, codes = _used_names(encoded.dictionary, codes, ok, series_col)
    return Keys(names, codes, index.as_unit("ns").asi8, ok, index.unit, index.tz)


def _used_names(dictionary: pa.Array, codes: np.ndarray, ok: np.ndarray,
                series_col: str) -> tuple[list[str], np.ndarray]:
    """The names (U,) of the dictionary entries that rows with both keys use, and codes (R,)
    into them: a categorical column keeps categories no row has, which are no series."""
    used = np.flatnonzero(np.bincount(codes[ok], minlength=len(dictionary)))
    # each name is converted once, as the in-memory loader converts every cell
    frame = pd.DataFrame({series_col: dictionary.take(pa.array(used)).to_pandas()})
    remap = np.full(len(dictionary) + 1, -1, np.int64)  # the last entry keeps -1 at -1
    remap[used] = np.arange(len(used))
    return tidy.series(frame, series_col).tolist(), remap[codes]


@dataclass
class Grid:
    """Where every row goes: series ids (sorted) and the regular time grid."""

    ids: list[str]  # (N,)
    rows: np.ndarray  # (N,) rows per series
    start: int  # ns of the first step
    step: int  # ns between steps
    n_steps: int
    alias: str  # data.freq
    unit: str
    tz: str | None

    def times(self) -> pd.DatetimeIndex:
        """(T,) the grid, in the file's time zone and resolution."""
        first = pd.Timestamp(self.start, unit="ns", tz="UTC" if self.tz else None)
        if self.tz:
            first = first.tz_convert(self.tz)
        return pd.date_range(first.as_unit(self.unit), periods=self.n_steps,
                             freq=pd.Timedelta(self.step, unit="ns"))


NO_TIME = np.iinfo(np.int64).min  # ns: the series has no row yet


@dataclass
class _Scan:
    """Pass 1 state, per series in order of first appearance in the file."""

    code: dict[str, int] = field(default_factory=dict)
    first: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # earliest time
    latest: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # latest time
    last: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # of the last row
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    steps: Counter = field(default_factory=Counter)  # (series code, step ns) -> count
    backwards: set = field(default_factory=set)  # codes of series whose rows go back in time
    keyless: int = 0
    unit: str = "ns"
    tz: object = None

    def add(self, keys: Keys) -> None:
        local = np.array([self._code(n) for n in keys.names] + [-1], dtype=np.int64)
        self._grow()
        self.keyless += int((~keys.ok).sum())
        self.unit, self.tz = keys.unit, keys.tz
        order = np.argsort(local[keys.codes[keys.ok]], kind="stable")  # file order per series
        c, t = local[keys.codes[keys.ok]][order], keys.times[keys.ok][order]
        if len(c) == 0:
            return
        starts = np.r_[True, c[1:] != c[:-1]]  # a series' first row in this batch
        prev = np.r_[NO_TIME, t[:-1]]
        prev[starts] = self.last[c[starts]]
        seen = prev != NO_TIME
        step = t - np.where(seen, prev, t)
        self.backwards.update(np.unique(c[seen & (step < 0)]).tolist())
        self.steps.update(_pair_counts(c[step > 0], step[step > 0]))
        np.minimum.at(self.first, c, t)
        np.maximum.at(self.latest, c, t)
        self.rows += np.bincount(c, minlength=len(self.rows))
        ends = np.r_[c[1:] != c[:-1], True]
        self.last[c[ends]] = t[ends]

    def _code(self, name: str) -> int:
        return self.code.setdefault(name, len(self.code))

    def _grow(self) -> None:
        more = len(self.code) - len(self.rows)
        if more:
            fill = {"first": np.iinfo(np.int64).max, "latest": NO_TIME, "last": NO_TIME, "rows": 0}
            for name, value in fill.items():
                setattr(self, name, np.r_[getattr(self, name), np.full(more, value, np.int64)])


def _pair_counts(a: np.ndarray, b: np.ndarray) -> dict[tuple[int, int], int]:
    """How often each (a, b) pair occurs (np.unique over pairs, which is slow on axis=1)."""
    if len(a) == 0:  # a batch of first rows has no step
        return {}
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    first = np.flatnonzero(np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])])
    counts = np.diff(np.r_[first, len(a)])
    pairs = zip(a[first].tolist(), b[first].tolist(), strict=True)
    return dict(zip(pairs, counts.tolist(), strict=True))


def scan_grid(pf: pq.ParquetFile, series_col: str, time_col: str, tz: str | None,
              freq: str | None, source: str) -> Grid:
    """Pass 1: the series and the regular grid from their first to their last time."""
    scan = _Scan()
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[series_col, time_col]):
        scan.add(batch_keys(batch, series_col, time_col, tz, source))
    if not scan.code:
        raise ValueError(f"{source}: no row has both a series and a time; check data.series_col "
                         "and data.time_col")
    if scan.keyless:
        note(log, logging.WARNING, "empty_keys", scan.keyless, "%s: %d row(s) with an empty "
             "series or time cell dropped", source, scan.keyless, source=source)
    names = list(scan.code)
    step, alias = offset(freq) if freq else inferred_offset(_common_step(scan, names, source))
    step_ns = int(step / pd.Timedelta(1, "ns"))
    start, end = int(scan.first.min()), int(scan.latest.max())
    order = np.argsort(np.array(names, dtype=object))  # np.unique's order, as in to_panel
    tz_name = None if scan.tz is None else str(scan.tz)
    return Grid([names[i] for i in order], scan.rows[order], start, step_ns,
                (end - start) // step_ns + 1, alias, scan.unit, tz_name)


def _common_step(scan: _Scan, names: list[str], source: str) -> pd.Timedelta:
    """panel.infer_freq on the scanned steps: each series' most common step must agree; the most
    common step overall (the smallest of equals) is the grid's."""
    if scan.backwards:
        example = sorted(names[c] for c in scan.backwards)[:3]
        raise ValueError(f"{source}: rows of series {example} go back in time; data.memmap infers "
                         "data.freq only from rows in time order within each series: sort the "
                         "file by series and time, or set data.freq")
    if not scan.steps:
        raise ValueError(f"{source}: {NO_STEP}; set data.freq to the file's step, e.g. "
                         "data.freq=h")
    per_series: dict[int, tuple[int, int]] = {}
    overall: Counter = Counter()
    for (c, step), n in scan.steps.items():
        overall[step] += n
        best = per_series.get(c)
        if best is None or (-n, step) < (-best[1], best[0]):
            per_series[c] = (step, n)
    by_series = pd.Series({names[c]: pd.Timedelta(s, unit="ns") for c, (s, _) in
                           per_series.items()}).sort_index()
    check_one_step(by_series)
    step = min(overall, key=lambda s: (-overall[s], s))
    return pd.Timedelta(step, unit="ns")


@dataclass(frozen=True)
class Column:
    """One feature of the panel and the file column it comes from."""

    name: str
    source: str
    kind: str = "number"  # number | sin | cos (of an angle in degrees)


@dataclass(frozen=True)
class MissingValueRules:
    """Which numbers are read as missing, as the in-memory loader reads them: the numeric
    data.na_values and values outside data.valid_range."""

    sentinels: tuple[float, ...] = ()  # data.na_values that are numbers
    valid_range: dict = field(default_factory=dict)  # {feature: (low, high)}


def write_values(pf: pq.ParquetFile, grid: Grid, columns: list[Column], keys: tuple[str, str],
                 tz: str | None, rules: MissingValueRules, out: np.ndarray,
                 source: str) -> np.ndarray:
    """Pass 2: every row's features into its cell of out (N, T, F), which holds NaN. Returns the
    observed steps per series and feature (N, F)."""
    series_col, time_col = keys
    position = pd.Index(grid.ids)
    seen = np.zeros((len(grid.ids), grid.n_steps), bool)
    counts = np.zeros((len(grid.ids), len(columns)), np.int64)
    tally: Counter = Counter()
    sources = list(dict.fromkeys(c.source for c in columns))
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[series_col, time_col, *sources]):
        k = batch_keys(batch, series_col, time_col, tz, source)
        series = np.r_[position.get_indexer(k.names), -1][k.codes][k.ok]
        steps = _grid_steps(k.times[k.ok], series, grid, source)
        _check_unique(seen, series, steps, grid, source)
        block = feature_block(batch, columns, rules, tally)[k.ok]
        out[series, steps] = block
        np.add.at(counts, series, ~np.isnan(block))
        release(out)
    # keys (repair kind, what the line says, column), said in the order of the words
    for (kind, what, name), n in sorted((t for t in tally.items() if t[1]),
                                        key=lambda t: t[0][1:]):
        note(log, logging.WARNING, kind, n, "%s: column '%s': %d %s read as missing",
             source, name, n, what, source=source, column=name)
    return counts


def _grid_steps(times: np.ndarray, series: np.ndarray, grid: Grid, source: str) -> np.ndarray:
    """Times (R,) ns -> their steps on the grid (R,); rows between steps are refused."""
    offsets = times - grid.start
    off = offsets % grid.step != 0
    if off.any():
        examples = [{SERIES: grid.ids[s], TIME: _stamp(t, grid)}
                    for s, t in zip(series[off][:3], times[off][:3], strict=True)]
        raise ValueError(f"{source}: " + off_grid_message(int(off.sum()), grid.alias,
                                                          _stamp(grid.start, grid), examples))
    return offsets // grid.step


def _stamp(ns: int, grid: Grid) -> pd.Timestamp:
    stamp = pd.Timestamp(int(ns), unit="ns", tz="UTC" if grid.tz else None)
    return stamp.tz_convert(grid.tz) if grid.tz else stamp


def _check_unique(seen: np.ndarray, series: np.ndarray, steps: np.ndarray, grid: Grid,
                  source: str) -> None:
    """Each (series, step) cell comes from one row: duplicates are refused, not resolved."""
    cells = series * grid.n_steps + steps
    _, first = np.unique(cells, return_index=True)
    again = np.ones(len(cells), bool)
    again[first] = seen[series[first], steps[first]]
    if again.any():
        examples = [f"'{grid.ids[s]}' at {_stamp(grid.start + t * grid.step, grid)}"
                    for s, t in zip(series[again][:3], steps[again][:3], strict=True)]
        raise ValueError(
            f"{source}: row(s) repeat the (series, time) of an earlier row, e.g. "
            f"{'; '.join(examples)}; data.memmap does not resolve duplicates (data.duplicates): "
            "remove them from the file, or drop data.memmap to read it in memory"
        )
    seen[series, steps] = True


def feature_block(batch: pa.RecordBatch, columns: list[Column], rules: MissingValueRules,
                  tally: Counter) -> np.ndarray:
    """The batch's features (R, F) float32, NaN where missing, cleaned as the in-memory loader
    cleans numeric columns: sentinels, angles -> sin/cos, values outside data.valid_range."""
    out = np.empty((batch.num_rows, len(columns)), np.float32)
    numbers: dict[str, np.ndarray] = {}
    for j, column in enumerate(columns):
        if column.source not in numbers:
            numbers[column.source] = _numbers(batch.column(column.source), column.source,
                                              rules.sentinels, tally)
        x = numbers[column.source]
        if column.kind != "number":
            x = _angle(x, column, tally)
        low, high = rules.valid_range.get(column.name, (-np.inf, np.inf))
        bad = (x < low) | (x > high)
        tally["out_of_range", "value(s) outside data.valid_range", column.name] += int(bad.sum())
        out[:, j] = np.where(bad, np.nan, x)
    return out


def _numbers(array: pa.Array, name: str, sentinels: tuple, tally: Counter) -> np.ndarray:
    """A numeric or boolean column (R,) -> float64 (R,), NaN where empty, a sentinel or not
    finite in float32."""
    x = np.array(pc.cast(array, pa.float64(), safe=False).to_numpy(zero_copy_only=False))
    if sentinels:
        hit = np.isin(x, sentinels)
        tally["sentinels", f"sentinel value(s) {list(sentinels)}", name] += int(hit.sum())
        x[hit] = np.nan
    # as in memory: beyond float32's range the panel would hold inf
    infinite = ~np.isnan(x) & ~(np.abs(x) <= FLOAT32_MAX)
    tally["infinite", "infinite or out-of-range value(s)", name] += int(infinite.sum())
    x[infinite] = np.nan
    return x


def _angle(degrees: np.ndarray, column: Column, tally: Counter) -> np.ndarray:
    """Angles in degrees (R,) -> their sine or cosine (R,), NaN outside 0-360."""
    bad = ~np.isnan(degrees) & ~((degrees >= 0) & (degrees <= 360))
    if column.kind == "sin":  # counted once for the pair
        what = "value(s) that are not degrees 0-360"
        tally["bad_directions", what, column.source] += int(bad.sum())
    radians = np.deg2rad(np.where(bad, np.nan, degrees))
    return np.sin(radians) if column.kind == "sin" else np.cos(radians)
