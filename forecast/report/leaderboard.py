"""`forecast-report`: the leaderboard of a sweep's jobs (csv, md, html, png), and the Hydra
callback that refreshes it after every job of a multirun."""

from __future__ import annotations

import html
import json
import logging
import re
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from forecast.report import tables
from forecast.report.page import STYLE, image

log = logging.getLogger(__name__)

_SEED = re.compile(r"^seed=")


def collect(sweep_dir: Path) -> pd.DataFrame:
    """One row per job folder of a sweep (found by its .hydra/overrides.yaml): its overrides,
    validation and test scores, skill, time, epochs; failed jobs get status 'failed' (trials a
    pruner stopped 'pruned') and error."""
    rows = []
    for overrides_file in sorted(sweep_dir.glob("**/.hydra/overrides.yaml")):
        job = overrides_file.parent.parent
        overrides = [str(o) for o in (yaml.safe_load(overrides_file.read_text()) or [])]
        row = {"overrides": overrides, "folder": str(job.relative_to(sweep_dir))}
        row.update(_job_scores(job))
        rows.append(row)
    if not rows:
        raise ValueError(f"'{sweep_dir}' holds no job folders (no */.hydra/overrides.yaml); "
                         "give the folder of a `forecast-train -m` sweep")
    # overrides every job shares say nothing about the differences (whole overrides: values may
    # hold spaces, e.g. data.split={train: 0.6, ...})
    common = set.intersection(*(set(r["overrides"]) for r in rows)) if len(rows) > 1 else set()
    for r in rows:
        own = [o for o in r["overrides"] if o not in common]
        r["group"] = " ".join(o for o in own if not _SEED.match(o)) or "(same)"
        r["overrides"] = " ".join(own) or "(same)"
    return pd.DataFrame(rows)


def _job_scores(job: Path) -> dict:
    path = job / "metrics.json"
    if not path.is_file():
        error = job / "error.txt"
        reason = error.read_text().strip() if error.is_file() else "no metrics.json (unfinished?)"
        lines = reason.splitlines()
        # an Optuna trial its pruner stopped (forecast/runs/pruning.py) did not fail
        status = "pruned" if lines and lines[0].startswith("TrialPruned") else "failed"
        return {"status": status, "error": lines[0][:200] if lines else "error.txt is empty"}
    try:
        return _scores(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as error:  # truncated, or not this tool's
        log.warning("%s cannot be read (%s: %s); the job is listed as failed", path,
                    type(error).__name__, error)
        return {"status": "failed", "error": f"unreadable {path} ({type(error).__name__})"}


def _scores(m: dict) -> dict:
    model, base = m["model"], m["baselines"]
    out = {"status": "ok", "val_loss": m.get("val_loss"), "test_mae": model["mae"],
           "test_rmse": model["rmse"], "skill": model.get("skill"),
           "fit_seconds": m.get("seconds", {}).get("fit"), "epochs": m.get("epochs")}
    for name in ("persistence", "ridge"):
        if name in base:
            out[f"{name}_mae"] = base[name]["mae"]
    out["by_lead_mae"] = model["by_lead"]["mae"]
    out["unit"] = tables.unit_label(m)
    out["step_seconds"] = m.get("step_seconds")
    return out


def leaderboard(jobs: pd.DataFrame) -> pd.DataFrame:
    """Jobs that differ only by `seed` become one row (mean and std over seeds), sorted by the
    validation loss, best first and marked; then the trials a pruner stopped, then failed
    jobs."""
    ok = jobs[jobs["status"] == "ok"]
    numeric = [c for c in ("val_loss", "test_mae", "test_rmse", "skill", "persistence_mae",
                           "ridge_mae", "fit_seconds", "epochs") if c in ok]
    rows = []
    for group, part in ok.groupby("group", sort=False):
        row = {"rank": 0, "best": "", "config": group, "runs": len(part)}
        for col in numeric:
            values = part[col].astype(float)
            row[col] = values.mean()
            if col in ("val_loss", "test_mae", "skill"):  # std beside its mean
                row[f"{col}_std"] = values.std(ddof=0) if len(part) > 1 else np.nan
        row["folders"] = " ".join(part["folder"])
        rows.append(row)
    board = pd.DataFrame(rows)
    if len(board):
        board = board.sort_values("val_loss", na_position="last").reset_index(drop=True)
        board["rank"] = np.arange(1, len(board) + 1)
        board.loc[0, "best"] = "*"
    for status in UNSCORED:
        jobs_of = jobs[jobs["status"] == status]
        if len(jobs_of):
            board = pd.concat([board, pd.DataFrame({
                "rank": None, "best": status, "config": jobs_of["overrides"], "runs": 1,
                "folders": jobs_of["folder"], "error": jobs_of["error"]})], ignore_index=True)
    return board


UNSCORED = ("pruned", "failed")  # rows without scores, in the order they are listed


def to_markdown(board: pd.DataFrame) -> str:
    cols = [c for c in board.columns if c != "folders"]
    fmt = lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else (  # noqa: E731
        f"{v:.4g}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for _, r in board.iterrows()]
    return "\n".join(lines)


def best_margin(board: pd.DataFrame, unit: str = "") -> str:
    """One sentence: the best configuration's test MAE and its margin over ridge and
    persistence (mean over its seeds, as on the board)."""
    ok = board[board["best"] == "*"]
    if not len(ok):
        return "No job finished: no best configuration."
    best = ok.iloc[0]
    said = [f"Best configuration (lowest validation loss): {best['config']}, test MAE "
            f"{_cell(best['test_mae'], '{:.3f}')}{' ' + unit if unit else ''}"]
    for name in ("ridge", "persistence"):
        change = _margin(best, name)
        if change is not None:
            side = "below" if change < 0 else "above"
            said.append(f"{abs(change):.1%} {side} {name} ({best[f'{name}_mae']:.3f})"
                        + (f", a loss to {name}" if change > 0 else ""))
    return ", ".join(said) + "."


def _margin(row: pd.Series, name: str) -> float | None:
    """The relative difference of a row's test MAE to a baseline's (-0.05: 5% lower), or None."""
    base = row.get(f"{name}_mae")
    if base is None or pd.isna(base) or base == 0 or pd.isna(row.get("test_mae")):
        return None
    return float(row["test_mae"] / base - 1.0)


def _cell(value, fmt: str = "{:.4g}") -> str:
    """A table cell's text: an em dash where the value is undefined (None, NaN)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "\u2014"
    return fmt.format(value) if isinstance(value, float | np.floating) else str(value)


def _links(folders: Sequence[str]) -> str:
    """Links to each run's report.html, named by its seed where the folder name holds one."""
    links = []
    for i, folder in enumerate(folders, start=1):
        seed = re.search(r"seed=(\d+)", folder)
        label = f"seed {seed.group(1)}" if seed else f"run {i}"
        href = urllib.parse.quote(f"{folder}/report.html")
        links.append(f"<a href=\"{html.escape(href)}\">{label}</a>")
    return " ".join(links)


def _spread(row: pd.Series, column: str) -> str:
    """A mean and, where there are several seeds, its spread: "0.4 \u00b1 0.1"."""
    std = row.get(f"{column}_std")
    return _cell(row.get(column)) + (f" \u00b1 {_cell(std, '{:.2g}')}" if pd.notna(std) else "")


def _board_row(r: pd.Series, folders: dict[str, list[str]]) -> str:
    """One leaderboard row as HTML cells (a failed or pruned job: its config, link and error);
    `folders`: the run folders of each config (folder names may hold spaces)."""
    if r["best"] in UNSCORED:
        return (f"<tr><td>{r['best']}</td><td>{html.escape(str(r['config']))}</td>"
                f"<td>{_links([r['folders']])}</td><td colspan='8'>"
                f"{html.escape(str(r.get('error', '')))}</td></tr>")
    margins = [_cell(_margin(r, n), "{:+.1%}") for n in ("ridge", "persistence")]
    cells = [f"{int(r['rank'])}{' *' if r['best'] == '*' else ''}",
             html.escape(str(r["config"])), _links(folders[r["config"]]), _spread(r, "val_loss"),
             _spread(r, "test_mae"), _cell(r.get("test_rmse")), _spread(r, "skill"), *margins,
             _cell(r.get("fit_seconds"), "{:.0f}"), _cell(r.get("epochs"), "{:.0f}")]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def board_table(board: pd.DataFrame, jobs: pd.DataFrame, unit: str = "") -> str:
    """The leaderboard as an HTML table that fits the page: the spread beside each mean, the
    margins over ridge and persistence, a link to every run's report.html (from `jobs`, as
    `collect` returns them), no NaN."""
    mae = f"test MAE{f' ({unit})' if unit else ''}"
    heads = ["#", "config", "runs", "val loss", mae, "test RMSE", "skill", "MAE vs ridge",
             "MAE vs persistence", "fit s", "epochs"]
    cols = "".join(f"<col class='{c}'>" for c in ("rank", "config", "runs", *["n"] * 5, "wide",
                                                   "n", "n"))
    ok = jobs[jobs["status"] == "ok"]
    folders = {g: list(part["folder"]) for g, part in ok.groupby("group", sort=False)}
    rows = [_board_row(r, folders) for _, r in board.iterrows()]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    return (f"<table class='board'><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def write_leaderboard(sweep_dir: Path, top: int = 5) -> pd.DataFrame:
    """leaderboard.csv/.md/.html and leaderboard.png in the sweep folder; returns the board."""
    from forecast.report import plots

    sweep_dir = Path(sweep_dir)
    jobs = collect(sweep_dir)
    board = leaderboard(jobs)
    board.to_csv(sweep_dir / "leaderboard.csv", index=False)
    (sweep_dir / "leaderboard.md").write_text(to_markdown(board) + "\n")
    ok = board[~board["best"].isin(UNSCORED)]
    png = sweep_dir / "leaderboard.png"
    unit = next((u for u in jobs.get("unit", pd.Series(dtype=str)).dropna() if u), "")
    steps = jobs.get("step_seconds", pd.Series(dtype=float)).dropna()
    lead = tables.lead_unit(steps.iloc[0] if len(steps) else None)
    if len(ok):
        leads = {g: np.mean(np.stack(jobs.loc[(jobs["group"] == g) & (jobs["status"] == "ok"),
                                              "by_lead_mae"].tolist()), axis=0)
                 for g in ok["config"].head(top)}
        plots.save(plots.sweep_comparison(ok, leads, unit, lead), png)
    board.attrs["unit"] = unit  # the scores' unit, for the line forecast-report prints
    page = [f"<!doctype html><html><head><meta charset='utf-8'><title>Sweep {sweep_dir.name}"
            f"</title><style>{STYLE}</style></head><body><h1>Sweep {html.escape(str(sweep_dir))}"
            f"</h1><p class='verdict'>{html.escape(best_margin(board, unit))}</p>",
            board_table(board, jobs, unit)]
    if png.is_file():
        page.append(image(png))
    (sweep_dir / "leaderboard.html").write_text("\n".join(page) + "</body></html>")
    return board


def main(argv: Sequence[str] | None = None) -> int:
    """`forecast-report <sweep folder>`: write and print the leaderboard of a sweep."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="forecast-report", description=main.__doc__)
    parser.add_argument("sweep", type=Path, help="a folder written by `forecast-train -m`")
    parser.add_argument("--top", type=int, default=5, help="runs drawn in the lead-time plot")
    args = parser.parse_args(argv)
    if not args.sweep.is_dir():
        print(f"forecast-report: '{args.sweep}' is not a folder", file=sys.stderr)
        return 2
    try:
        board = write_leaderboard(args.sweep, args.top)
    except ValueError as error:
        print(f"forecast-report: {error}", file=sys.stderr)
        return 2
    print(to_markdown(board))
    print(f"\n{best_margin(board, board.attrs.get('unit', ''))}")
    print(f"\nLeaderboard written to {args.sweep}/leaderboard.{{csv,md,html,png}}")
    return 0


class LeaderboardCallback(Callback):
    """Hydra callback: creates the sweep folder up front, records a failed job's error in its
    folder and refreshes the sweep's leaderboard after every job, so it exists even when a
    failing job ends the multirun."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        # the Optuna study's SQLite file lives in the sweep folder, opened before any job runs
        Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value
            out = Path(config.hydra.runtime.output_dir)
            (out / "error.txt").write_text(f"{type(error).__name__}: {error}\n")
        self._refresh(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        board = self._refresh(Path(config.hydra.sweep.dir))
        if board is not None:
            print(to_markdown(board))
            print(best_margin(board, board.attrs.get("unit", "")))
            print(f"Leaderboard: {config.hydra.sweep.dir}/leaderboard.html")

    @staticmethod
    def _refresh(sweep_dir: Path) -> pd.DataFrame | None:
        try:
            return write_leaderboard(sweep_dir)
        except Exception as error:  # a broken report must not take the sweep down with it
            log.warning("leaderboard not written: %s", error)
            return None


if __name__ == "__main__":
    raise SystemExit(main())
