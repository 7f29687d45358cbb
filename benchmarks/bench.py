"""`python benchmarks/bench.py [--quick] [--out bench.json]`: how fast and big the train path is.

Five measurements, one function each, printed as a table and written as JSON:
1. training throughput (steps/s) of the full forecast-train path (Forecaster + PanelDataModule +
   Lightning Trainer with the run's CSV logger, progress bar off) against a bare PyTorch loop over
   the same RegLSTM with prebuilt tensors (Adam, the run's loss, gradient-norm clipping); steady
   state: warm-up steps untimed, validation off, the fit stopped before any epoch-end work;
2. windows/s the DataLoader delivers against what the model consumes;
3. memory of the panel and the window index, and peak RSS, for two lookbacks (a fresh
   subprocess per case, so one case's peak cannot hide another's); and the synthetic panel
   written to Parquet and read in memory (data=csv) against data.memmap;
4. wall time of a default `forecast-train` run, split by its metrics.json "seconds";
5. latency of forecast-predict's library functions on that run, and the command's wall time;
6. benchmark scale: `+experiment=ltsf trainer.max_epochs=1` on a synthetic file of 52,704 steps
   x 21 columns (the long-horizon weather file's shape): the run's peak RSS, its seconds per
   stage, and evaluation against the one epoch of fitting (`--skip-scale` leaves it out).

Not a timed test: it reports numbers and the load average of the machine beside them.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf, open_dict

from forecast.data import prepared
from forecast.data.mapped import is_mapped
from forecast.data.panel import to_panel
from forecast.data.sources import SERIES, TIME
from forecast.models import options
from forecast.models.forecaster import LOSSES, Forecaster
from forecast.models.network import RegLSTM
from forecast.runs import predict, train

log = logging.getLogger(__name__)

BIN = Path(sys.executable).parent  # the console scripts of this environment
MODELS = {"lstm": [], "bilstm_2layer": ["model=bilstm", "model.num_layers=2"],
          "segrnn": ["model=segrnn"]}
TARGETS = {"full_vs_bare": 0.9, "loader_vs_model": 10.0, "panel_vs_raw": 2.0,
           "scale_peak_rss_mb": 2500.0, "scale_evaluate_vs_epoch": 1.0}


@dataclass
class Settings:
    """How much of everything to measure; FULL for the README, QUICK for the smoke test."""

    warmup: int  # training steps run but not timed (allocator, autograd and thread warm-up)
    steps: int  # timed training steps
    repeats: int  # pairs of bare/full runs per model; medians, bests and pairs reported
    data: list[str]  # Hydra overrides choosing the data of measurements 1 and 2
    loader_epochs: int  # passes over the train loader in measurement 2
    memory_cases: list[dict]
    run_args: list[str] | None  # forecast-train arguments of 4 (predicted from in 5); None: skip
    predict_repeats: int
    scale: tuple[int, int] | None = None  # 6: (steps, columns) of the +experiment=ltsf file


def _memory_cases(n_series: int, n_steps: int, with_nyc: bool,
                  mapped_series: Sequence[int] = (), parquet_in_memory: bool = True) -> list[dict]:
    """In memory: nyc_weather and the synthetic panel at two lookbacks. From Parquet: the
    synthetic panel in memory, memory-mapped (built, then reused), and `mapped_series` more."""
    cases = [{"data": "nyc_weather", "lookback": lb} for lb in (48, 336)] if with_nyc else []
    synthetic = {"data": "synthetic", "n_series": n_series, "n_steps": n_steps, "n_features": 10}
    cases += [{**synthetic, "lookback": lb} for lb in (48, 336)]
    parquet = {**synthetic, "data": "parquet", "lookback": 48}
    read_as = ("", "build", "reuse") if parquet_in_memory else ("build", "reuse")
    cases += [{**parquet, "memmap": m} for m in read_as]
    return cases + [{**parquet, "n_series": n, "memmap": "build"} for n in mapped_series]


FULL = Settings(warmup=8, steps=60, repeats=7, data=[], loader_epochs=3,
                memory_cases=_memory_cases(100, 20_000, with_nyc=True, mapped_series=[1000]),
                run_args=[], predict_repeats=5, scale=(52_704, 21))
# Quick leaves out 4 and 5: two more interpreters with Lightning (10-40 s on a busy 2-core box)
# would not fit its minute; `--runs` puts them back, as forecast-train data=synthetic trainer=fast.
QUICK = Settings(warmup=1, steps=3, repeats=1, data=["data=synthetic", "lookback=24"],
                 loader_epochs=1,
                 # a fresh interpreter per memory case costs ~10 s of imports: four, not five
                 memory_cases=_memory_cases(10, 2_000, with_nyc=False, parquet_in_memory=False),
                 run_args=None, predict_repeats=2)
QUICK_RUN_ARGS = ["data=synthetic", "trainer=fast"]


# --- configuration and data ---------------------------------------------------------------------


def compose_cfg(overrides: Sequence[str] = ()) -> DictConfig:
    """The composed forecast-train config, exactly as `forecast-train <overrides>` sees it."""
    with initialize_config_module(config_module="forecast.conf", version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def prepare_data(cfg: DictConfig) -> prepared.Prepared:
    """Panel and windows as train.run builds them."""
    panel = train.load_panel(cfg.data, cfg.seed, targets=cfg.targets,
                             min_steps=cfg.lookback + cfg.horizon)
    split = (cfg.data.split.train, cfg.data.split.val, cfg.data.split.test)
    return train.prepare(cfg, panel, split)


def fit_steps(prep: prepared.Prepared, batch_size: int, settings: Settings) -> int:
    """Timed steps that fit in one epoch after the warm-up: an epoch end would run the plateau
    scheduler and early stopping, which need the validation this measurement leaves out."""
    per_epoch = math.ceil(len(prep.indices["train"]) / batch_size)
    steps = min(settings.steps, per_epoch - settings.warmup)
    if steps < settings.steps:
        log.warning("only %d timed steps fit in one epoch of %d batches", steps, per_epoch)
    return steps


def steady_rate(times: Sequence[float], warmup: int) -> dict:
    """Steps/s between the end of the last warm-up step and the end of the last step, and the
    median step time (ms), which a burst of load from other processes moves less."""
    steps = np.diff(np.asarray(times[warmup - 1:]))
    return {"steps_per_s": len(steps) / steps.sum(), "median_step_ms": 1000 * np.median(steps)}


# --- 1. training throughput ---------------------------------------------------------------------


class _Enough(Exception):
    """Raised by _StepClock after the last timed step, to leave trainer.fit at once."""


class _StepClock(pl.Callback):
    """Time stamps at the end of every training step; stops the fit after `total` steps, before
    any epoch-end work (validation, checkpoint, scheduler) could enter the timing."""

    def __init__(self, total: int):
        self.total, self.times = total, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter())
        if len(self.times) >= self.total:
            raise _Enough


def full_path_times(cfg: DictConfig, prep: prepared.Prepared, total: int) -> list[float]:
    """End times of `total` training steps of train.py's own objects: Forecaster,
    PanelDataModule and train.build_trainer (callbacks, CSV logger, trainer config), progress bar
    off, validation off (limit_val_batches=0), the fit cut right after the last step."""
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.trainer.update(max_steps=total, limit_val_batches=0,
                           enable_progress_bar=False)
    pl.seed_everything(cfg.seed, workers=True)
    schema = OmegaConf.to_object(cfg.model)
    module = Forecaster(RegLSTM(**options.shapes(prep), options=schema.net()), schema.training())
    dm = prepared.datamodule(prep, cfg.data.batch_size, cfg.data.num_workers, cfg.seed,
                             input_cols=module.net.input_columns)
    clock = _StepClock(total)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = train.build_trainer(cfg, Path(run_dir))
        trainer.callbacks.append(clock)
        try:
            trainer.fit(module, datamodule=dm)
        except _Enough:
            pass
    return clock.times


def bare_loop_times(cfg: DictConfig, prep: prepared.Prepared, total: int) -> list[float]:
    """End times of `total` steps of a plain loop: the same RegLSTM, batch size and shuffled train
    windows, gathered into tensors before timing; Adam, the loss and clip_grad_norm_ as the
    trainer."""
    torch.manual_seed(cfg.seed)
    schema = OmegaConf.to_object(cfg.model)
    net = RegLSTM(**options.shapes(prep), options=schema.net()).train()
    training = schema.training()
    opt = torch.optim.Adam(net.parameters(), lr=training.lr, weight_decay=training.weight_decay)
    batches = _prebuilt_batches(prep, cfg.data.batch_size, total, net.input_columns)
    clip = cfg.trainer.get("gradient_clip_val") or math.inf
    loss_fn = LOSSES[training.loss]
    times = []
    for x, y, series in batches:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x, series), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        times.append(time.perf_counter())
    return times


def _prebuilt_batches(prep: prepared.Prepared, batch_size: int, n: int,
                      input_cols: list[int] | None) -> list[tuple]:
    """n batches (x (B, L, F_x), y (B, H, n_targets), series (B,)) of shuffled train windows,
    x of the columns the net reads, as the full path's loader gives them."""
    ds = prepared.datamodule(prep, batch_size, input_cols=input_cols).dataset("train")
    order = torch.randperm(len(ds))
    return [ds[order[i * batch_size:(i + 1) * batch_size].tolist()] for i in range(n)]


def training_throughput(overrides: Sequence[str], settings: Settings) -> dict:
    """Full path vs bare loop for one model: `repeats` pairs of runs, one of each path, so that a
    change in the machine's load hits both (bare, full | full, bare | bare, full ...: the order
    alternates, so that a steady drift favours neither path); median and best of each path."""
    cfg = compose_cfg(overrides)
    prep = prepare_data(cfg)
    steps = fit_steps(prep, cfg.data.batch_size, settings)
    total, runs = settings.warmup + steps, {"bare": [], "full": []}
    timers = {"bare": bare_loop_times, "full": full_path_times}
    for pair in range(settings.repeats):
        for path in ("bare", "full") if pair % 2 == 0 else ("full", "bare"):
            runs[path].append(steady_rate(timers[path](cfg, prep, total), settings.warmup))
    result = {f"{path}_{key}": statistics.median(r[key] for r in rs)
              for path, rs in runs.items() for key in ("steps_per_s", "median_step_ms")}
    # best of the repeats: other processes only ever slow a run down, never speed it up
    result.update({f"{path}_best_steps_per_s": max(r["steps_per_s"] for r in rs)
                   for path, rs in runs.items()})
    model = {k: cfg.model[k] for k in ("cell", "hidden_size", "num_layers", "bidirectional")}
    result.update({"runs": runs, "timed_steps": steps, "warmup_steps": settings.warmup,
                   "threads": torch.get_num_threads(), "batch_size": cfg.data.batch_size,
                   "lookback": cfg.lookback, "horizon": cfg.horizon, "model": model,
                   "load": os.getloadavg()})
    result["ratio"] = result["full_steps_per_s"] / result["bare_steps_per_s"]
    result["ratio_median_step"] = result["bare_median_step_ms"] / result["full_median_step_ms"]
    result["ratio_best"] = result["full_best_steps_per_s"] / result["bare_best_steps_per_s"]
    # each full run against the bare run next to it: the machine's speed drifts by 10-20% over
    # a minute here, which moves both runs of a pair alike and cancels in their ratio
    result["paired_ratios"] = [f["steps_per_s"] / b["steps_per_s"]
                               for b, f in zip(runs["bare"], runs["full"], strict=True)]
    result["ratio_paired"] = statistics.median(result["paired_ratios"])
    return result


# --- 2. data pipeline ---------------------------------------------------------------------------


def loader_throughput(overrides: Sequence[str], settings: Settings) -> dict:
    """Windows/s of the train loader of prepared.datamodule(prep, 256) alone, whole epochs."""
    prep = prepare_data(compose_cfg(overrides))
    loader = prepared.datamodule(prep, 256).train_dataloader()
    windows, clock = 0, time.perf_counter()
    for _ in range(settings.loader_epochs):
        for x, _y, _series in loader:
            windows += x.shape[0]
    seconds = time.perf_counter() - clock
    return {"windows_per_s": windows / seconds, "windows": windows, "seconds": seconds,
            "epochs": settings.loader_epochs, "batch_size": 256, "load": os.getloadavg()}


def consumption_ratio(loader: dict, training: dict) -> dict:
    """DataLoader windows/s against what each model's full training path consumes."""
    out = {}
    for name, result in training.items():
        consumed = result["full_steps_per_s"] * result["batch_size"]
        out[name] = {"consumed_windows_per_s": consumed,
                     "ratio": loader["windows_per_s"] / consumed}
    return out


# --- 3. memory ----------------------------------------------------------------------------------


def _rss_mb(field: str) -> float | None:
    """VmRSS (now) or VmHWM (peak) of this process from /proc, in MiB; None elsewhere.

    VmHWM rather than ru_maxrss for the peak: Linux keeps ru_maxrss across fork + exec, so a
    child of this (large) benchmark process would report the parent's size as its own peak.
    """
    try:
        with open("/proc/self/status") as status:
            line = next(s for s in status if s.startswith(field + ":"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) / 1024  # kB


def _ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def synthetic_long(n_series: int, n_steps: int, n_features: int, seed: int = 0) -> pd.DataFrame:
    """Long [series, time, f0..] frame of random values, float64 as a file read gives them."""
    return _synthetic_rows(np.random.default_rng(seed), range(n_series), n_steps, n_features)


def _synthetic_rows(rng: np.random.Generator, series: range, n_steps: int,
                    n_features: int) -> pd.DataFrame:
    times = pd.date_range("2020-01-01", periods=n_steps, freq="h").to_numpy()
    ids = np.array([f"s{i:03d}" for i in series], dtype=object)
    values = rng.standard_normal((len(ids) * n_steps, n_features))
    df = pd.DataFrame(values, columns=[f"f{j}" for j in range(n_features)])
    df.insert(0, TIME, np.tile(times, len(ids)))
    df.insert(0, SERIES, np.repeat(ids, n_steps))
    return df


def write_synthetic_parquet(path: Path, n_series: int, n_steps: int, n_features: int,
                            seed: int = 0, block: int = 100) -> Path:
    """synthetic_long's rows (the same values) as Parquet, written `block` series at a time."""
    rng = np.random.default_rng(seed)
    writer = None
    for first in range(0, n_series, block):
        rows = range(first, min(n_series, first + block))
        table = pa.Table.from_pandas(_synthetic_rows(rng, rows, n_steps, n_features),
                                     preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()
    return path


def _memory_panel(case: dict) -> tuple:
    """(panel, targets, calendar) of a memory case; the long frame is dropped on return."""
    if case["data"] == "synthetic":
        df = synthetic_long(case["n_series"], case["n_steps"], case["n_features"])
        return to_panel(df, "h"), ["f0"], ()
    if case["data"] == "parquet":
        overrides = ["data=csv", f"data.path={case['path']}", "targets=[f0]", "data.freq=h"]
        overrides += [f"data.memmap={case['folder']}"] if case["memmap"] else []
        cfg = compose_cfg(overrides)
        return train.load_panel(cfg.data, cfg.seed, cfg.targets, case["lookback"] + 24), \
            ["f0"], ()
    cfg = compose_cfg([f"lookback={case['lookback']}"])
    panel = train.load_panel(cfg.data, cfg.seed, targets=cfg.targets,
                             min_steps=cfg.lookback + cfg.horizon)
    return panel, list(cfg.targets), list(cfg.data.calendar)


class AnonPeak:
    """The peak of RssAnon, sampled every `interval` s in a thread while the block runs: memory
    the process owns. VmHWM also counts the resident pages of mapped files, which the kernel
    drops under pressure (and with large folios, maps 2 MB around every page read)."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak_mb = interval, 0.0
        self._stop = threading.Event()

    def __enter__(self) -> AnonPeak:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, _rss_mb("RssAnon") or 0.0)
            if self._stop.wait(self.interval):
                return


def memory_case(case: dict) -> dict:
    """Run in a fresh interpreter: build panel and windows (prepared.prepare + one DataLoader
    batch) and report array sizes and the peak RSS, before (after imports) and after.

    Counted per (series, step): every array a run keeps, the panel's values and the scaled
    model inputs (the calendar, shared by all series, is reported apart)."""
    before, anon_before = _rss_mb("VmRSS"), _rss_mb("RssAnon")
    clock = time.perf_counter()
    with AnonPeak() as anon:
        panel, targets, calendar = _memory_panel(case)
        peak_panel = _rss_mb("VmHWM")
        prep = prepared.prepare(panel, case["lookback"], 24, targets, calendar=calendar)
        x, _, _ = next(iter(prepared.datamodule(prep, 256).train_dataloader()))
    n, t, f = panel.values.shape
    raw = n * t * f * 4
    inputs = prep.model_inputs
    panel_bytes = panel.values.nbytes + inputs.nbytes_per_series * n
    return {**case, "shape": [n, t, f], "input_features": inputs.shape[-1],
            "mapped": is_mapped(panel.values),
            "windows": sum(len(v) for v in prep.indices.values()), "batch_x": list(x.shape),
            "raw_mb": raw / 2**20, "panel_mb": panel_bytes / 2**20,
            "panel_vs_raw": panel_bytes / raw, "calendar_mb": inputs.calendar.nbytes / 2**20,
            "index_mb": sum(v.nbytes for v in prep.indices.values()) / 2**20,
            "rss_after_imports_mb": before, "peak_rss_after_panel_mb": peak_panel,
            "peak_rss_mb": _rss_mb("VmHWM") or _ru_maxrss_mb(),
            "peak_anon_mb": anon.peak_mb, "rss_anon_after_imports_mb": anon_before,
            "rss_anon_mb": _rss_mb("RssAnon"), "rss_file_mb": _rss_mb("RssFile"),
            "ru_maxrss_mb": _ru_maxrss_mb(), "seconds": time.perf_counter() - clock}


def memory_cases(cases: list[dict]) -> list[dict]:
    """Every case in its own subprocess; the Parquet cases share files in a temporary folder
    (their panel, memory-mapped, lies beside them)."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        results = []
        for case in cases:
            if case["data"] == "parquet":
                case = {**case, **_parquet_file(case, Path(tmp))}
            results.append(memory_in_subprocess(case))
        return results


def _parquet_file(case: dict, folder: Path) -> dict:
    shape = (case["n_series"], case["n_steps"], case["n_features"])
    path = folder / f"synthetic_{'x'.join(map(str, shape))}.parquet"
    if not path.exists():
        log.info("writing %s", path)
        write_synthetic_parquet(path, *shape)
    return {"path": str(path), "folder": str(folder / "memmap"),
            "parquet_mb": path.stat().st_size / 2**20}


def memory_in_subprocess(case: dict) -> dict:
    """memory_case in `python benchmarks/bench.py --memory-case ...`; its last stdout line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-case", json.dumps(case)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise RuntimeError(f"memory case {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def lookback_growth(cases: list[dict]) -> dict:
    """Per data set, index and peak-RSS growth from the shortest to the longest lookback."""
    out = {}
    cases = [c for c in cases if c["data"] != "parquet"]  # one lookback: the loaders compared
    for data in dict.fromkeys(c["data"] for c in cases):
        mine = sorted((c for c in cases if c["data"] == data), key=lambda c: c["lookback"])
        short, long = mine[0], mine[-1]
        out[data] = {"lookbacks": [short["lookback"], long["lookback"]],
                     "index_mb_change": long["index_mb"] - short["index_mb"],
                     "peak_rss_mb_change": long["peak_rss_mb"] - short["peak_rss_mb"]}
    return out


# --- 4. end to end ------------------------------------------------------------------------------


def end_to_end(args: Sequence[str], workdir: Path) -> dict:
    """Wall time of `forecast-train <args>` in `workdir` and its own split into stages."""
    clock = time.perf_counter()
    proc = subprocess.run([str(BIN / "forecast-train"), *args], cwd=workdir, capture_output=True,
                          text=True, timeout=3600)
    wall = time.perf_counter() - clock
    if proc.returncode:
        raise RuntimeError(f"forecast-train {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    metrics_path = sorted(workdir.glob("outputs/*/*/metrics.json"))[-1]
    metrics = json.loads(metrics_path.read_text())
    stages = {k: float(v) for k, v in metrics["seconds"].items()}
    # interpreter start, imports, Hydra, and writing tables, parquet and report.html
    stages["other"] = wall - sum(stages.values())
    return {"args": list(args), "wall_s": wall, "seconds": stages, "epochs": metrics["epochs"],
            "run_dir": str(metrics_path.parent), "load": os.getloadavg()}


# --- 5. predict ---------------------------------------------------------------------------------


def predict_latency(run_dir: Path, repeats: int, workdir: Path) -> dict:
    """forecast-predict's library calls on a finished run, in this (warm) interpreter: load the
    run, forecast every series, write the outputs. First call and median of the later ones."""
    stages = {"load_run": [], "forecast_run": [], "write_outputs": []}
    for i in range(repeats):
        t0 = time.perf_counter()
        run = predict.load_run(run_dir)
        t1 = time.perf_counter()
        table, history = predict.forecast_run(run)
        t2 = time.perf_counter()
        predict.write_outputs(table, history, workdir / f"predict_{i}")
        t3 = time.perf_counter()
        for key, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            stages[key].append(seconds)
    later = lambda v: statistics.median(v[1:] or v)  # noqa: E731
    return {"first_s": {k: v[0] for k, v in stages.items()},
            "median_s": {k: later(v) for k, v in stages.items()},
            "series": int(table["series"].nunique()), "rows": len(table), "repeats": repeats}


def predict_command(run_dir: Path, workdir: Path) -> dict:
    """Wall time of the `forecast-predict run=<dir>` subprocess, interpreter start included."""
    clock = time.perf_counter()
    proc = subprocess.run([str(BIN / "forecast-predict"), f"run={run_dir}"], cwd=workdir,
                          capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - clock
    if proc.returncode:
        raise RuntimeError(f"forecast-predict failed:\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, "load": os.getloadavg()}


# --- report -------------------------------------------------------------------------------------


def machine() -> dict:
    """CPU model, cores, versions and torch threads: what the numbers depend on."""
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name")), platform.processor())
    except OSError:
        cpu = platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "lightning": pl.__version__, "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads()}


# --- 6. benchmark scale -------------------------------------------------------------------------


def write_scale_csv(path: Path, n_steps: int, n_columns: int, seed: int = 0) -> Path:
    """A long-horizon benchmark file: `date` every 10 minutes and columns v0.. of daily and
    weekly cycles, a slow random walk and noise (the weather file's shape, not its values)."""
    rng = np.random.default_rng(seed)
    day = np.arange(n_steps) / 144.0  # 144 ten-minute steps a day
    columns = {f"v{j}": (1 + j / 10) * np.sin(2 * np.pi * day + j)
               + 0.3 * np.sin(2 * np.pi * day / 7) + 0.02 * np.cumsum(rng.standard_normal(n_steps))
               + 0.3 * rng.standard_normal(n_steps) for j in range(n_columns)}
    dates = pd.date_range("2020-01-01", periods=n_steps, freq="10min")
    pd.DataFrame({"date": dates.strftime("%Y-%m-%d %H:%M:%S"), **columns}).round(4).to_csv(
        path, index=False)
    return path


# a fresh interpreter whose only child is the run: its RUSAGE_CHILDREN peak is the run's
_PEAK_OF_CHILD = ("import resource, subprocess, sys; "
                  "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
                  "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)")


def scale_run(n_steps: int, n_columns: int, workdir: Path) -> dict:
    """`forecast-train +experiment=ltsf trainer.max_epochs=1` on write_scale_csv's file: the
    run's peak RSS, metrics.json's seconds per stage and evaluation / one epoch of fitting."""
    path = write_scale_csv(workdir / "scale.csv", n_steps, n_columns)
    run_dir = workdir / "scale_run"
    args = ["+experiment=ltsf", f"data.path={path}", "data.time_col=date",
            "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"]
    clock = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PEAK_OF_CHILD, str(BIN / "forecast-train"),
                           *args], capture_output=True, text=True, timeout=7200)
    if proc.returncode:
        raise RuntimeError(f"forecast-train {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    seconds = {k: float(v) for k, v in metrics["seconds"].items()}
    return {"shape": [n_steps, n_columns], "args": args[:1] + args[2:4],
            "peak_rss_mb": int(proc.stdout.split()[-1]) / 1024,  # Linux: kB
            "wall_s": time.perf_counter() - clock, "seconds": seconds,
            "evaluate_vs_epoch": seconds["evaluate"] / seconds["fit"],
            "windows": {k: metrics["windows"][k] for k in ("train", "val", "test")},
            "mse": metrics["model"]["mse"], "load": os.getloadavg()}


def verdicts(results: dict) -> dict:
    """Each target: holds or not, with the number it rests on."""
    out = {}
    for name, r in results.get("training", {}).items():
        # the median of the paired ratios: a drift of the machine's speed cancels within a pair,
        # and a stall of seconds in one run moves one pair of several, not the verdict
        out[f"full_vs_bare[{name}]"] = {
            "value": r["ratio_paired"],
            "holds": bool(r["ratio_paired"] >= TARGETS["full_vs_bare"])}
    for name, r in results.get("loader_vs_model", {}).items():
        out[f"loader_vs_model[{name}]"] = {
            "value": r["ratio"], "holds": bool(r["ratio"] >= TARGETS["loader_vs_model"])}
    for data, g in results.get("lookback_growth", {}).items():
        out[f"window_memory_flat[{data}]"] = {"value": g["index_mb_change"],
                                              "holds": bool(g["index_mb_change"] <= 0)}
    for c in results.get("memory", []):
        key = f"panel_vs_raw[{_memory_label(c)}]"
        out[key] = {"value": c["panel_vs_raw"],
                    "holds": bool(c["panel_vs_raw"] <= TARGETS["panel_vs_raw"])}
    if "scale" in results:
        for key in ("peak_rss_mb", "evaluate_vs_epoch"):
            value = results["scale"][key]
            out[f"scale_{key}"] = {"value": value, "holds": bool(value <= TARGETS[f"scale_{key}"])}
    return out


def format_table(results: dict) -> str:
    """The results as plain-text tables."""
    lines = [f"machine: {results['machine']}"]
    if "training" in results:
        lines += _throughput_lines(results)
    lines += _memory_lines(results["memory"])
    lines += _run_lines(results)
    lines += ["", "targets:"]
    lines += [f"  {k:<40}{v['value']:>9.3f}  {'holds' if v['holds'] else 'FAILS'}"
              for k, v in results["targets"].items()]
    return "\n".join(lines)


def _throughput_lines(results: dict) -> list[str]:
    lines = ["", "training: steps/s (median of runs | best run), median step ms; "
             "ratio = full/bare;",
             "paired: median of each full run's ratio to the bare run next to it (the verdict)",
             f"{'':<15}{'full':>7}{'bare':>7}{'ratio':>7} |{'full':>6}{'bare':>6}{'ratio':>7} |"
             f"{'full':>6}{'bare':>6}{'ratio':>7} |{'paired':>7}{'steps':>6}  load"]
    for name, r in results["training"].items():
        lines.append(f"{name:<15}{r['full_steps_per_s']:>7.1f}{r['bare_steps_per_s']:>7.1f}"
                     f"{r['ratio']:>7.2f} |{r['full_best_steps_per_s']:>6.1f}"
                     f"{r['bare_best_steps_per_s']:>6.1f}{r['ratio_best']:>7.2f} |"
                     f"{r['full_median_step_ms']:>6.1f}{r['bare_median_step_ms']:>6.1f}"
                     f"{r['ratio_median_step']:>7.2f} |{r['ratio_paired']:>7.2f}"
                     f"{r['timed_steps']:>6}  {r['load'][0]:.2f}")
    loader = results["loader"]
    lines += ["", f"DataLoader: {loader['windows_per_s']:,.0f} windows/s"]
    for name, r in results["loader_vs_model"].items():
        lines.append(f"  vs {name}: consumes {r['consumed_windows_per_s']:,.0f}/s "
                     f"-> {r['ratio']:.1f}x")
    return lines


def _memory_label(case: dict) -> str:
    if case["data"] != "parquet":
        return f"{case['data']},L={case['lookback']}"
    return f"parquet {case['n_series']} series, {case['memmap'] or 'in memory'}"


def _memory_lines(cases: list[dict]) -> list[str]:
    lines = ["", "memory (MB): panel = what a run keeps per (series, step), values + scaled "
                 "inputs; RSS0 = after imports;", "peak1 = after loading the panel, peak = after "
                 "prepare and one batch (VmHWM); anon0, anon = RssAnon after imports, its "
                 "(sampled) peak",
             f"{'':<28}{'shape':>15}{'raw':>7}{'panel':>7}{'x raw':>6}{'index':>7}"
             f"{'RSS0':>6}{'peak1':>6}{'peak':>6}{'anon0':>6}{'anon':>6}{'s':>6}"]
    for c in cases:
        lines.append(f"{_memory_label(c)[:28]:<28}{'x'.join(map(str, c['shape'])):>15}"
                     f"{c['raw_mb']:>7.1f}{c['panel_mb']:>7.1f}{c['panel_vs_raw']:>6.2f}"
                     f"{c['index_mb']:>7.1f}{c['rss_after_imports_mb']:>6.0f}"
                     f"{c['peak_rss_after_panel_mb']:>6.0f}{c['peak_rss_mb']:>6.0f}"
                     f"{c['rss_anon_after_imports_mb'] or 0:>6.0f}{c['peak_anon_mb']:>6.0f}"
                     f"{c['seconds']:>6.1f}")
    calendar = max((c["calendar_mb"] for c in cases), default=0)
    lines.append(f"(the calendar, one (T, C) table shared by every series: {calendar:.2f} MB at "
                 "most)")
    return lines


def _run_lines(results: dict) -> list[str]:
    lines = []
    if "end_to_end" in results:
        e = results["end_to_end"]
        stages = ", ".join(f"{k} {v:.1f}" for k, v in e["seconds"].items())
        lines += ["", f"forecast-train {' '.join(e['args'])}: {e['wall_s']:.1f} s wall, "
                      f"{e['epochs']} epochs ({stages})"]
    if "predict" in results:
        p = results["predict"]
        fmt = lambda d: ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in d.items())  # noqa: E731
        lines += [f"predict ({p['series']} series), first: {fmt(p['first_s'])}",
                  f"predict, warm median: {fmt(p['median_s'])}",
                  f"forecast-predict command: {p['command']['wall_s']:.1f} s wall"]
    if "scale" in results:
        c = results["scale"]
        stages = ", ".join(f"{k} {v:.1f}" for k, v in c["seconds"].items())
        lines += ["", f"benchmark scale, {' '.join(c['args'])} on {c['shape'][0]:,} x "
                      f"{c['shape'][1]}: peak RSS {c['peak_rss_mb']:,.0f} MB, "
                      f"{c['wall_s']:.0f} s wall ({stages}); evaluate / one epoch "
                      f"{c['evaluate_vs_epoch']:.2f}; windows {c['windows']}"]
    return lines


def run_all(settings: Settings, out: Path, memory_only: bool = False) -> dict:
    """Every measurement in order (only 3 with memory_only), the load average beside each; `out`
    is rewritten after each section, so a long run that fails late keeps what it measured."""
    results: dict = {"machine": machine(), "settings": asdict(settings),
                     "load_start": os.getloadavg()}
    if not memory_only:
        results.update(throughput(settings, out))
    log.info("3. memory (%d subprocesses)", len(settings.memory_cases))
    results["memory"] = memory_cases(settings.memory_cases)
    results["lookback_growth"] = lookback_growth(results["memory"])
    _write(results, out)
    if settings.run_args is not None and not memory_only:
        results.update(runs(settings))
    if settings.scale is not None and not memory_only:
        log.info("6. benchmark scale: +experiment=ltsf on %d steps x %d columns", *settings.scale)
        with tempfile.TemporaryDirectory() as tmp:
            results["scale"] = scale_run(*settings.scale, Path(tmp))
        _write(results, out)
    results["load_end"] = os.getloadavg()
    results["targets"] = verdicts(results)
    _write(results, out)
    return results


def throughput(settings: Settings, out: Path) -> dict:
    """Measurements 1 and 2."""
    log.info("1. training throughput")
    results: dict = {"training": {}}
    for name, extra in MODELS.items():
        results["training"][name] = training_throughput(settings.data + extra, settings)
        _write(results, out)
    log.info("2. data pipeline")
    results["loader"] = loader_throughput(settings.data, settings)
    results["loader_vs_model"] = consumption_ratio(results["loader"], results["training"])
    return results


def runs(settings: Settings) -> dict:
    """Measurements 4 and 5: one forecast-train run, then forecast-predict on it."""
    with tempfile.TemporaryDirectory() as tmp:
        log.info("4. end to end: forecast-train %s", " ".join(settings.run_args))
        e2e = end_to_end(settings.run_args, Path(tmp))
        log.info("5. predict")
        run_dir = Path(e2e["run_dir"])
        latency = predict_latency(run_dir, settings.predict_repeats, Path(tmp))
        latency["command"] = predict_command(run_dir, Path(tmp))
    return {"end_to_end": e2e, "predict": latency}


def _write(results: dict, out: Path) -> None:
    out.write_text(json.dumps(results, indent=2, default=float))


def _quiet() -> None:
    """Lightning's banners and advice would drown the table; the numbers do not depend on them."""
    for name in ("pytorch_lightning", "lightning", "lightning_fabric", "forecast.data.loader",
                 "forecast.data.panel", "forecast.data.prepared", "forecast.runs.predict"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", module="lightning_fabric")


def main(argv: Sequence[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(prog="python benchmarks/bench.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench.json"), help="JSON file")
    parser.add_argument("--quick", action="store_true",
                        help="smoke version: synthetic data, a few steps, small panels")
    parser.add_argument("--skip-runs", action="store_true",
                        help="leave out the forecast-train / forecast-predict runs (4 and 5)")
    parser.add_argument("--runs", action="store_true",
                        help="with --quick: do 4 and 5 too, on data=synthetic trainer=fast")
    parser.add_argument("--skip-scale", action="store_true",
                        help="leave out the benchmark-scale run (6)")
    parser.add_argument("--threads", type=int,
                        help="torch intra-op threads for 1 and 2 (default: torch's, all cores)")
    parser.add_argument("--memory-only", action="store_true",
                        help="measurement 3 alone (memory; minutes with the full settings)")
    parser.add_argument("--memory-case", help=argparse.SUPPRESS)  # the child of measurement 3
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    _quiet()
    if args.memory_case:
        print(json.dumps(memory_case(json.loads(args.memory_case))))
        return None
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = QUICK if args.quick else FULL
    if args.skip_runs or (args.quick and args.runs):
        settings = replace(settings, run_args=None if args.skip_runs else QUICK_RUN_ARGS)
    if args.skip_scale:
        settings = replace(settings, scale=None)
    results = run_all(settings, args.out, args.memory_only)
    print(format_table(results))
    print(f"JSON: {args.out.resolve()}")
    return results


if __name__ == "__main__":
    main()
