"""`forecast-predict run=<run folder>`: forecast the `horizon` steps after the end of the data.

Reads what a forecast-train run left behind (.hydra/config.yaml, checkpoints/best.ckpt or
last.ckpt, checkpoints/data.json), rebuilds the model inputs exactly as training did from the
run's data or from a new file (data.path=...), and forecasts from its last observed target. A run
trained with known inputs (data.known) reads their values over the horizon from the rows past
that target and from future=<file> (forecast.runs.predict_known).

The network (forecast.models.network.RegLSTM) is rebuilt from the checkpoint without PyTorch
Lightning, whose import would take most of the command's time; nothing on this path may import it.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from forecast.config import DataConfig
from forecast.data import loader
from forecast.data.panel import Panel, Scaler, build_inputs
from forecast.evaluation import conformal
from forecast.models import checkpoints
from forecast.models.network import RegLSTM
from forecast.models.quantiles import point
from forecast.runs import predict_known, runfolder
from forecast.runs.predict_data import (
    build_panel,
    data_settings,
    freq_step,
    future_times,
    load_frame,
)

log = logging.getLogger(__name__)

CONFIG = ".hydra/config.yaml"
DESCRIPTION_KEYS = ("scaler", "features", "input_names", "targets", "ids", "freq", "lookback",
                    "horizon")
COLUMNS = ["series", "time", "target", "forecast"]
NET_PREFIX = "net."  # Forecaster keeps its RegLSTM as `self.net`, so its weights' keys start so


@dataclass
class TrainedRun:
    path: Path
    data: DataConfig  # the run's resolved `data` options
    seed: int
    description: dict  # checkpoints/data.json: scaler, features, input_names, targets, ids, ...
    checkpoint: Path
    module: RegLSTM  # in eval mode


def load_run(run_dir: str | Path, checkpoint: str = "best",
             allow_incomplete: bool = False) -> TrainedRun:
    """Everything forecasting needs from a run folder; names the path and what is missing.
    A run that did not finish (killed, or still training) is refused unless `allow_incomplete`,
    which forecasts from its checkpoint with a warning."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"run folder '{run_dir}' does not exist; pass run=<a forecast-train output folder>, "
            "e.g. run=outputs/2024-05-01/12-00-00"
        )
    if not runfolder.is_complete(run_dir):
        message = (f"run folder '{run_dir}' holds a run that has not finished (killed, or "
                   "still training): its checkpoint may be a partial model")
        if not allow_incomplete:
            raise ValueError(f"{message}. Finish it with forecast-train hydra.run.dir={run_dir} "
                             "resume=true, or pass allow_incomplete=true to forecast anyway")
        log.warning("%s; forecasting from it as allow_incomplete=true asks", message)
    folder = checkpoint_dir(run_dir)
    ckpt = find_checkpoint(folder, checkpoint)
    description = folder / "data.json"
    missing = [str(p.relative_to(run_dir)) for p in (run_dir / CONFIG, description)
               if not p.is_file()]
    if ckpt is None:
        names = ["best.ckpt", "last.ckpt"] if checkpoint == "best" else [f"{checkpoint}.ckpt"]
        missing.append(" or ".join(str((folder / n).relative_to(run_dir)) for n in names))
    if missing:
        raise FileNotFoundError(
            f"run folder '{run_dir}' is incomplete: missing {', '.join(missing)}. Point run= at "
            "the folder of a finished forecast-train run (the one holding .hydra/ and checkpoints/)"
        )
    config = OmegaConf.load(run_dir / CONFIG)
    description = read_description(description)
    description["calibration"] = conformal.load(folder, description)  # None without intervals
    module = load_module(ckpt, description, folder / "data.json")
    return TrainedRun(run_dir, loader.as_config(OmegaConf.to_container(config.data, resolve=True)),
                      int(config.get("seed", 0)), description, ckpt, module)


def checkpoint_dir(run_dir: Path) -> Path:
    """<run>/checkpoints; for a backtest run (evaluate.folds > 1) the last fold's, whose model
    has trained on the most data."""
    folds = [p for p in (run_dir / "folds").glob("*/checkpoints") if p.parent.name.isdigit()]
    if (run_dir / "checkpoints").is_dir() or not folds:
        return run_dir / "checkpoints"
    last = max(folds, key=lambda p: int(p.parent.name))
    log.info("backtest run: forecasting with the model of its last fold, %s", last)
    return last


def find_checkpoint(folder: Path, checkpoint: str = "best") -> Path | None:
    """best.ckpt, falling back to last.ckpt (a run stopped before validating has no best)."""
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint='{checkpoint}' must be 'best' or 'last'")
    names = ["best.ckpt", "last.ckpt"] if checkpoint == "best" else ["last.ckpt"]
    for name in names:
        path = folder / name
        if path.is_file():
            if name != f"{checkpoint}.ckpt":
                log.warning("no %s.ckpt in %s; using %s", checkpoint, folder, name)
            return path
    return None


def read_description(path: Path) -> dict:
    try:
        description = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"'{path}' is not valid JSON ({err}); re-run forecast-train") from None
    missing = [k for k in DESCRIPTION_KEYS if k not in description]
    if missing:
        raise ValueError(f"'{path}' lacks the key(s) {missing}; re-run forecast-train")
    return description


def load_module(path: Path, description: dict, data_json: Path | None = None) -> RegLSTM:
    """The RegLSTM of a forecast-train checkpoint, in eval mode, checked against the run's
    data.json. Read with weights_only=True: tensors and plain values only, so a checkpoint from
    elsewhere cannot run code when it is loaded."""
    ckpt = checkpoints.read(path)
    if data_json is not None:
        checkpoints.check_digest(ckpt, path, data_json)
    kwargs = ckpt["hyper_parameters"]["net"]  # RegLSTM's shapes and options
    check_module(kwargs, description, path)
    source = f"checkpoint '{path}'"
    try:
        module = RegLSTM.from_hparams(kwargs, source)
    except (TypeError, ValueError) as err:
        if source in str(err):  # another version's checkpoint, refused by name
            raise
        raise ValueError(f"{source}: its network arguments {sorted(kwargs)} do not build this "
                         f"version's RegLSTM ({err}); re-run forecast-train") from None
    # a key without the prefix is kept as it is, so that the strict load names it as unexpected
    weights = {k.removeprefix(NET_PREFIX): v for k, v in ckpt["state_dict"].items()}
    try:
        module.load_state_dict(weights)
    except RuntimeError as err:
        # the first line only names the class; the keys and shapes that differ follow it
        details = " ".join(line.strip() for line in str(err).splitlines()[1:])
        raise ValueError(f"checkpoint '{path}': the weights do not fit its hyper_parameters "
                         f"({details})") from None
    return module.eval()


def check_module(net: dict, description: dict, ckpt: Path) -> None:
    """The checkpoint's network arguments `net` and data.json must come from the same run (same
    shapes)."""
    features = description["features"]
    want = {"n_features": len(description["input_names"]), "horizon": description["horizon"],
            "n_targets": len(description["targets"])}
    # same sizes are not enough: a residual net adds the last value of the input columns it was
    # trained on, so other targets or lookbacks would give plausible but wrong forecasts
    optional = {"lookback": description["lookback"], "norm_features": len(features),
                "target_positions": [features.index(t) if t in features else None
                                     for t in description["targets"]]}
    want |= {k: v for k, v in optional.items() if k in net}
    if net.get("embedding_dim"):
        want["n_series"] = len(description["ids"])
    # the known inputs are read by position: the net's must be data.json's names
    names = description["input_names"]
    want["known_positions"] = [names.index(k) if k in names else None
                               for k in description.get("known", [])]
    want["n_static"] = len((description.get("static") or {}).get("names", []))
    have = {"known_positions": [], "n_static": 0, **net}  # older checkpoints have neither
    wrong = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
    if wrong:
        raise ValueError(
            f"checkpoint '{ckpt}' does not match its data.json (checkpoint vs data.json: {wrong}); "
            "the run folder mixes files of different runs"
        )


def last_window(panel: Panel, description: dict, calendar: Sequence[str] = (),
                mask_features: bool = False) -> np.ndarray:
    """Scaled model inputs (N, L, F_in) of the last `lookback` steps, built as in training."""
    scaler = Scaler.from_dict(description["scaler"])
    if scaler.features != list(panel.features):
        raise ValueError(f"features {panel.features} differ from the scaler's {scaler.features}")
    inputs = build_inputs(panel, scaler, list(calendar or ()), mask_features)
    if inputs.names != description["input_names"]:
        raise ValueError(
            f"model inputs {inputs.names} differ from the run's {description['input_names']}; "
            "keep the run's data.calendar and data.mask_features"
        )
    lookback = description["lookback"]
    last = np.stack([np.arange(panel.n_series), np.full(panel.n_series, panel.n_steps - lookback)],
                    axis=1)  # (N, 2): one window per series, ending at the last step
    return inputs.gather(last, 0, lookback)  # (N, L, F_in)


def forecast_ahead(module: RegLSTM, panel: Panel, description: dict,
                   calendar: Sequence[str] = (), mask_features: bool = False,
                   known: np.ndarray | None = None,
                   static: np.ndarray | None = None) -> pd.DataFrame:
    """Table [series, time, target, forecast [, q0.1, ...]] (data units) of the horizon after
    the panel's last time: one row per series, step and target; the forecast is the median when
    the model has quantiles. known (N, H, F_known) and static (N, S): the covariates of a run
    trained with them (predict_known.ahead_inputs)."""
    _warn_stale(panel, description["targets"])
    x = torch.from_numpy(np.ascontiguousarray(last_window(panel, description, calendar,
                                                          mask_features)))  # (N, L, F_in)
    # a series embedding is indexed by the series' position in the training panel
    series = torch.tensor([description["ids"].index(str(i)) for i in panel.ids])  # (N,)
    covariates = [None if a is None else torch.from_numpy(a) for a in (known, static)]
    with torch.inference_mode():
        scaled = module.eval()(x, series, *covariates).numpy()  # (N, H, n_targets[, Q])
    targets = description["targets"]
    units = Scaler.from_dict(description["scaler"]).inverse_forecast(
        scaled, [panel.features.index(t) for t in targets])
    quantiles = list(module.quantiles)
    columns = {"forecast": point(units, quantiles)}
    columns.update({f"q{q:g}": units[..., j] for j, q in enumerate(quantiles)})
    columns.update(conformal.bounds(description.get("calibration"), units, quantiles,
                                    series.numpy()))
    times = future_times(panel.times[-1], panel.freq, description["horizon"])
    return _long_table(panel.ids, times, targets, columns)


def _warn_stale(panel: Panel, targets: Sequence[str]) -> None:
    """Series whose targets stop before the common last time are forecast from carried-forward
    inputs; say so rather than hide it."""
    columns = [panel.features.index(t) for t in targets]
    seen = panel.observed[:, :, columns].any(axis=2)  # (N, T)
    for name, row in zip(panel.ids, seen, strict=True):
        gap = int(np.argmax(row[::-1])) if row.any() else panel.n_steps
        if gap:
            log.warning("series '%s': no %s in the last %d step(s) before %s; its inputs are "
                        "carried forward", name, list(targets), gap, panel.times[-1])


def history_table(panel: Panel, targets: Sequence[str], steps: int) -> pd.DataFrame:
    """Table [series, time, target, actual] of the last `steps` observed values of the targets."""
    columns = [panel.features.index(t) for t in targets]
    values = panel.values[:, -steps:, columns]  # (N, S, n_targets)
    table = _long_table(panel.ids, panel.times[-steps:], list(targets), {"actual": values})
    return table.dropna(subset=["actual"]).reset_index(drop=True)


def _long_table(ids, times: pd.DatetimeIndex, targets: list[str],
                columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """(N, H, n_targets) arrays -> long table, rows ordered series, time, target."""
    n, h, nt = next(iter(columns.values())).shape
    return pd.DataFrame({
        "series": np.repeat(np.asarray(ids).astype(str), h * nt),
        "time": np.tile(np.repeat(times, nt), n),
        "target": np.tile(np.asarray(targets), n * h),
        **{name: values.reshape(-1) for name, values in columns.items()},
    })


def forecast_run(run: TrainedRun, data_overrides: dict | None = None, plot_days: int = 7,
                 future: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(forecast table, recent-history table) for a loaded run and its data or a new file;
    `future`: a CSV/Parquet file of the known inputs over the horizon (predict_known)."""
    data = data_settings(run.data, data_overrides)
    description = run.description
    source = f"data.path '{data.path}'" if data.name == "csv" else f"data '{data.name}'"
    df = load_frame(data, description["features"], description["targets"], run.seed)
    ahead = predict_known.ahead_inputs(build_panel(df, description, source), description, data,
                                       future, source, run.seed)
    panel = ahead.history
    table = forecast_ahead(run.module, panel, description, data.calendar, data.mask_features,
                           ahead.known, ahead.static)
    per_day = max(1, pd.Timedelta(days=1) // freq_step(panel.freq))
    steps = min(panel.n_steps, max(description["lookback"], plot_days * per_day))
    return table, history_table(panel, description["targets"], steps)


def write_outputs(table: pd.DataFrame, history: pd.DataFrame, out_dir: Path) -> list[Path]:
    """forecast.csv, forecast.parquet and plots/forecast_<target>.png in out_dir."""
    # matplotlib's import is slow: only a run that gets this far pays for it
    from forecast.report import plots

    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "forecast.csv", out_dir / "forecast.parquet"]
    table.to_csv(paths[0], index=False)
    table.to_parquet(paths[1], index=False)
    for target in pd.unique(table["target"]):
        path = out_dir / "plots" / f"forecast_{plots.safe_name(target)}.png"
        plots.save(plots.history_and_forecast(history, table, target), path)
        paths.append(path)
    return paths


def run(cfg: DictConfig, out_dir: Path) -> pd.DataFrame:
    if OmegaConf.is_missing(cfg, "run"):
        raise ValueError("which run? give its folder: forecast-predict run=outputs/<date>/<time>")
    trained = load_run(cfg.run, cfg.checkpoint, cfg.allow_incomplete)
    log.info("run %s, checkpoint %s", trained.path, trained.checkpoint.name)
    overrides = OmegaConf.to_container(cfg.data, resolve=True)
    future = cfg.get("future")
    table, history = forecast_run(trained, overrides, cfg.plot_days,
                                  None if future is None else str(future))
    paths = write_outputs(table, history, out_dir)
    print(summary(table, trained, paths))
    return table


def summary(table: pd.DataFrame, trained: TrainedRun, paths: list[Path]) -> str:
    times = table["time"]
    lines = [
        f"Forecast of {list(pd.unique(table['target']))} for {table['series'].nunique()} series,"
        f" {times.nunique()} steps from {times.min()} to {times.max()}"
        f" (run {trained.path}, {trained.checkpoint.name}); it starts at the step after the last"
        " observed target:",
        table.head(6).to_string(index=False),
        "Files: " + ", ".join(str(p) for p in paths),
    ]
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path="pkg://forecast.conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except (ValueError, FileNotFoundError) as err:
        # a wrong run folder or file is the user's to fix: one message, no traceback
        log.error("forecast-predict: %s", err)
        sys.exit(2)


if __name__ == "__main__":
    main()
