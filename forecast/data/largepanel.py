"""data.memmap: one long-format Parquet file -> a memory-mapped Panel, built once and reused.

The file is read with pyarrow in record batches (`parquet_scan`), never as a whole table; the
(N, T, F) float32 values go to `<folder>/<file stem>-<key>.f32`, described by the `.json` beside
it. The key hashes the file's path, size, modification time and Parquet footer with the data
options that shape the panel: a second run maps the same panel again, a changed option builds
another beside it (a sweep maps each again), and a changed file builds a new one and removes the
panels of its older versions.

Read as in memory: numeric and boolean feature columns, angles in degrees (-> sin/cos),
data.features, data.freq (inferred when each series' rows are in time order), data.tz, numeric
data.na_values and data.valid_range. Refused, naming the option or column: CSV files or several
files, data.time_parts, data.series_col=null, data.thousands, data.trace_cols,
data.duplicates=first|last, text feature columns (categories, numbers stored as text, compass
points) and repeated (series, time) rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from forecast.config import DataConfig
from forecast.data import files, repair_log, tidy
from forecast.data.columns import is_direction, is_number
from forecast.data.mapped import series_blocks
from forecast.data.panel import Panel, log_gaps
from forecast.data.parquet_scan import Column, Grid, MissingValueRules, scan_grid, write_values

log = logging.getLogger(__name__)

FORMAT = 2  # of the .f32/.json pair; a change makes older panels stale
KEY_OPTIONS = ("series_col", "time_col", "freq", "tz", "na_values", "valid_range",
               "direction_cols")
REFUSED = {"time_parts": "the time must be one column (data.time_col)",
           "thousands": "numbers stored as text are not read",
           "trace_cols": "text trace codes are not read"}


def load(data: DataConfig, targets: str | Sequence[str] | None = None,
         min_steps: int = 0) -> Panel:
    """The data.* options (the schema's record, data.memmap set) -> Panel whose values are an
    np.memmap (N, T, F) in data.memmap; `targets` and `min_steps` are checked as in memory."""
    data = asdict(data)  # read below as a mapping, as the panel's cache key records it
    path = parquet_file(data)
    source = str(path)
    pf = files.open_parquet(path, _reader, "data.memmap needs a Parquet file")
    columns = plan_columns(pf.schema_arrow, data, source)
    _check_target_columns(columns, targets, source)
    slot = panel_slot(panel_folder(data["memmap"]), path, data, columns)
    found = open_cached(slot)
    if found is None:
        found = build(pf, slot, columns, data, source)
    else:  # said when the panel was built; a run reusing it lists them all the same
        for made in found[1].get("repairs", ()):
            repair_log.record(made["kind"], made["count"], source=made["source"],
                           column=made["column"])
    panel, meta = found
    tidy.check_step_counts(pd.Series(meta["rows"], index=panel.ids), min_steps, source)
    counts = np.asarray(meta["observed"], dtype=np.int64).reshape(panel.n_series, -1)
    _check_target_values(counts, panel.features, targets, source)
    log_gaps(panel.ids, counts, panel.n_steps, panel.features)
    return panel


def parquet_file(data: Mapping) -> Path:
    """The one Parquet file of data.path; the options the streamed reader cannot honour are
    refused by name."""
    if data.get("name") != "csv":
        raise ValueError(f"data.memmap reads a Parquet file of data=csv, not data "
                         f"'{data.get('name')}'; drop data.memmap")
    refused = {k: why for k, why in REFUSED.items() if data.get(k)}
    if data.get("series_col") is None:
        refused["series_col"] = "null (one series per file) needs several files"
    if data.get("duplicates") in ("first", "last"):
        refused["duplicates"] = "repeated (series, time) rows are refused, not resolved"
    if refused:
        detail = "; ".join(f"data.{k}: {why}" for k, why in refused.items())
        raise ValueError(f"data.memmap cannot be combined with {detail}. Drop data.memmap to "
                         "read the file in memory, or drop those options")
    found = files.resolve_paths(data["path"])
    if len(found) != 1 or not found[0].name.lower().endswith(files.PARQUET_SUFFIXES):
        shown = found[0] if len(found) == 1 else f"{len(found)} files"
        raise ValueError(
            f"data.memmap needs data.path to be one Parquet file, got '{data['path']}' "
            f"({shown}); convert it, e.g. pandas.read_csv(...).to_parquet('x.parquet'), or "
            "drop data.memmap"
        )
    return found[0]


def panel_folder(option: str) -> Path:
    """data.memmap as a writable folder, created if need be; refused by name when it cannot be,
    before the long pass over the file."""
    folder = Path(str(option)).expanduser()
    why = _unusable(folder)
    if why:
        raise ValueError(f"data.memmap='{option}' cannot hold the panel ({why}); set data.memmap "
                         "to a folder that can be created and written, e.g. "
                         "data.memmap=/scratch/panels, or drop data.memmap to read the file in "
                         "memory")
    return folder


def _unusable(folder: Path) -> str:
    """Why `folder` cannot hold panels ('' when it can), after creating it if need be."""
    if folder.exists() and not folder.is_dir():
        return f"'{folder}' is a file"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file further up (NotADirectoryError), no permission, ...
        return f"{err.strerror}: '{err.filename}'"
    return "" if os.access(folder, os.W_OK | os.X_OK) else f"'{folder}' is not writable"


def _reader(path: Path) -> pq.ParquetFile:
    # pre-buffering coalesces the reads of every row group ahead: the whole file in memory
    return pq.ParquetFile(path, pre_buffer=False)


@dataclass(frozen=True)
class Slot:
    """Where a panel lives in data.memmap and what it is built from."""

    folder: Path
    name: str  # <file stem>-<the key's first 16 hex digits>
    key: str  # cache_key
    file: dict  # file_identity of the Parquet file: a change makes the panel stale

    def path(self, suffix: str) -> Path:
        return self.folder / f"{self.name}{suffix}"


def panel_slot(folder: Path, path: Path, data: Mapping, columns: list[Column]) -> Slot:
    """The place of the panel that `data` and `columns` make from the file as it is now."""
    file = file_identity(path)
    key = cache_key(path, file, data, columns)
    return Slot(folder, f"{files.stem(path)}-{key[:16]}", key, file)


def file_identity(path: Path) -> dict:
    """The file's size, modification time and a digest of its footer (the footer lists every
    row group and its statistics, so rewritten data changes it)."""
    stat = path.stat()
    with open(path, "rb") as handle:
        handle.seek(max(0, stat.st_size - 65_536))
        footer = hashlib.sha256(handle.read()).hexdigest()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "footer": footer}


def cache_key(path: Path, file: dict, data: Mapping, columns: list[Column]) -> str:
    """sha256 of the file's path and identity (`file_identity`) and the panel's options."""
    payload = {"format": FORMAT, "file": str(path.resolve()), **file,
               "columns": [asdict(c) for c in columns],
               "options": {k: data.get(k) for k in KEY_OPTIONS}}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --- columns ------------------------------------------------------------------------------------


def plan_columns(schema: pa.Schema, data: Mapping, source: str) -> list[Column]:
    """The panel's features from the file's columns, named and ordered as the in-memory loader
    names and orders them."""
    keys = [data["series_col"], data["time_col"]]
    missing = [k for k in keys if k not in schema.names]
    if missing:
        raise ValueError(files.missing_key_message(source, missing, schema.names,
                                                       data["series_col"]))
    index = [c for c in (schema.pandas_metadata or {}).get("index_columns", [])
             if isinstance(c, str)]
    candidates = [n for n in schema.names if n not in keys and n not in index]
    directions = tuple(data.get("direction_cols") or ())
    if data.get("features") is None:
        return [c for name in candidates if not name.startswith("Unnamed:")
                for c in _encode(schema, name, directions, source, auto=True)]
    picked: dict[str, Column] = {}
    for name in data["features"]:
        for column in _named(schema, name, candidates, directions, source):
            picked.setdefault(column.name, column)
    return list(picked.values())


def _named(schema: pa.Schema, name: str, candidates: list[str], directions: tuple,
           source: str) -> list[Column]:
    """data.features entry -> its columns: a column's name gives all it encodes to."""
    if name in candidates:
        return _encode(schema, name, directions, source, auto=False)
    stem = tidy.source_column(name, candidates)
    made = [] if stem is None else _encode(schema, stem, directions, source, auto=False)
    chosen = [c for c in made if c.name == name]
    if not chosen:
        raise ValueError(f"{source}: data.features ['{name}'] not found; the columns are "
                         f"{schema.names}. Set data.features to column names of the file")
    return chosen


def _encode(schema: pa.Schema, name: str, directions: tuple, source: str,
            auto: bool) -> list[Column]:
    kind = schema.field(name).type
    if pa.types.is_temporal(kind) and auto:
        repair_log.note(log, logging.WARNING, "dropped_column", 1, "%s: column '%s' holds times: "
                     "dropped (list the columns to use in data.features)", source, name,
                     source=source, column=name)
        return []
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)
            or pa.types.is_boolean(kind)):
        raise ValueError(
            f"{source}: column '{name}' is {kind}, not numbers; data.memmap reads numeric and "
            "boolean columns only. List the numeric columns in data.features, or drop "
            "data.memmap to have text encoded in memory"
        )
    if is_direction(name, directions):
        return [Column(f"{name}_sin", name, "sin"), Column(f"{name}_cos", name, "cos")]
    return [Column(name, name)]


def _check_target_columns(columns: list[Column], targets, source: str) -> None:
    names = [c.name for c in columns]
    for target in tidy.target_list(targets):
        if target not in names:
            raise ValueError(f"{source}: target '{target}' is not a feature; the features are "
                             f"{names}")


def _check_target_values(counts: np.ndarray, features: list[str], targets, source: str) -> None:
    for target in tidy.target_list(targets):
        if counts[:, features.index(target)].sum() == 0:
            raise ValueError(f"{source}: target '{target}' has no value (every cell is empty or "
                             "a missing-value code); choose another target or fill the column")


# --- the mapped panel ---------------------------------------------------------------------------


def build(pf: pq.ParquetFile, slot: Slot, columns: list[Column], data: Mapping,
          source: str) -> tuple[Panel, dict]:
    """Both passes over the file into the slot's `.f32`, then its `.json` description (with the
    repairs made, listed again when the panel is reused); returns the panel written (not looked
    up again: a parallel run may be writing the folder too)."""
    with repair_log.collect() as repaired:
        grid = scan_grid(pf, data["series_col"], data["time_col"], data.get("tz"),
                         data.get("freq"), source)
        shape = (len(grid.ids), grid.n_steps, len(columns))
        log.info("data.memmap: writing a %s panel (%.0f MB) to %s", "x".join(map(str, shape)),
                 np.prod(shape) * 4 / 2**20, slot.folder)
        counts, values = _fill_slot(pf, slot, grid, columns, data, source, shape)
    meta = {"format": FORMAT, "key": slot.key, "source": str(Path(source).resolve()),
            "file": slot.file, "shape": list(shape), "features": [c.name for c in columns],
            "grid": {k: v for k, v in asdict(grid).items() if k != "rows"},
            "rows": grid.rows.tolist(), "observed": counts.tolist(),
            "repairs": repair_log.as_json(repaired)}
    _write_json(meta, slot.path(".json"))
    _remove_stale(slot, meta["source"])
    return _panel(slot, meta, values), meta


def _fill_slot(pf: pq.ParquetFile, slot: Slot, grid: Grid, columns: list[Column], data: Mapping,
               source: str, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.memmap]:
    """Pass 2 into the slot's `.f32`: (observed steps (N, F), the values mapped, `shape`
    (N, T, F))."""
    partial = slot.path(f".f32.{os.getpid()}.partial")
    try:
        counts = _fill(pf, grid, columns, data, partial, source)
        # mapped before the rename: the mapping keeps the file whatever another run removes
        values = np.memmap(partial, np.float32, "r", shape=shape)
        os.replace(partial, slot.path(".f32"))
    finally:
        partial.unlink(missing_ok=True)
        pa.default_memory_pool().release_unused()  # else the pool keeps decoded row groups
    return counts, values


def _fill(pf: pq.ParquetFile, grid: Grid, columns: list[Column], data: Mapping, path: Path,
          source: str) -> np.ndarray:
    """Pass 2 into a new file at `path` holding (N, T, F) float32; returns the observed steps
    per series and feature (N, F)."""
    values = np.memmap(path, np.float32, "w+", shape=(len(grid.ids), grid.n_steps, len(columns)))
    for block in series_blocks(values):
        values[block] = np.nan
    sentinels = tuple(float(v) for v in data.get("na_values") or () if is_number(v))
    rules = MissingValueRules(sentinels, dict(data.get("valid_range") or {}))
    keys = (data["series_col"], data["time_col"])
    counts = write_values(pf, grid, columns, keys, data.get("tz"), rules, values, source)
    values.flush()
    return counts


def open_cached(slot: Slot) -> tuple[Panel, dict] | None:
    """The slot's panel if it is complete and was built under the slot's key."""
    meta = _own_meta(slot.path(".json"))
    values_path = slot.path(".f32")
    if meta is None or meta["key"] != slot.key or not values_path.is_file():
        return None
    shape = tuple(meta["shape"])
    if values_path.stat().st_size != 4 * int(np.prod(shape)):
        return None
    return _panel(slot, meta, np.memmap(values_path, np.float32, "r", shape=shape)), meta


def _panel(slot: Slot, meta: dict, values: np.memmap) -> Panel:
    """The Panel of mapped values (N, T, F), laid out as `meta` describes them."""
    grid = Grid(**{**meta["grid"], "rows": np.asarray(meta["rows"])})
    log.info("data.memmap: panel %s (%s)", slot.path(".f32"), "x".join(map(str, values.shape)))
    return Panel(values, np.array(grid.ids, dtype=object), grid.times(), meta["features"],
                 grid.alias, scratch=str(slot.folder))


def _own_meta(path: Path) -> dict | None:
    """The description in `path` if this module wrote it (a JSON object naming its source,
    whose key starts with the name's 16 hex digits); None for anything else."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):  # absent, unreadable, not UTF-8 or not JSON: not ours
        return None
    key = meta.get("key") if isinstance(meta, dict) else None
    ours = (isinstance(key, str) and len(key) == 64 and isinstance(meta.get("source"), str)
            and key[:16] == path.stem.rsplit("-", 1)[-1])
    return meta if ours else None


def _write_json(obj: dict, path: Path) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(obj))
    os.replace(partial, path)


def _remove_stale(slot: Slot, source: str) -> None:
    """Panels built from an older version of the same file. Panels of other options on this
    version stay: a sweep maps them again, and a parallel run may be using them. Only names
    and descriptions this module writes are touched; the user's own files never are."""
    stem = slot.name.rsplit("-", 1)[0]
    own = re.compile(re.escape(stem) + r"-[0-9a-f]{16}\.json")
    for path in sorted(slot.folder.iterdir()):
        if path.stem == slot.name or not own.fullmatch(path.name):
            continue
        meta = _own_meta(path)
        if meta is None or meta["source"] != source:
            continue
        if meta.get("format") != FORMAT or meta.get("file") != slot.file:
            log.info("data.memmap: removing %s, built from an older version of %s", path.stem,
                     source)
            path.with_suffix(".f32").unlink(missing_ok=True)
            path.unlink(missing_ok=True)
