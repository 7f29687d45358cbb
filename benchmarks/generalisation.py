"""Does the default recipe travel? The default `forecast-train` run on data sets nobody tuned for,
each read as a user would read it, against the baselines scored on the same test windows.

    python benchmarks/generalisation.py [--seeds 0 1 2] [--only nyc_weather ETTh1] \
        [--out benchmarks/generalisation.json] [--keep runs/] [-- override ...]

Overrides after `--` are added to every run (e.g. `-- model.backbone=none` measures the recipe
without the linear backbone). Rows:
- nyc_weather and city_weather, the built-in data sets, with their own defaults;
- ETTh1, ETTh2 (target OT) and EPF NP, PJM (target OT) from ../shared/benchmarks/, as a user's
  own file with the default recipe: data=csv data.path=... data.time_col=date
  data.series_col=null targets=[OT];
- the two TMY3 files that ship inside pvlib (Greensboro NC and Sand Point AK, hourly, read with
  pvlib.iotools.read_tmy3 and written as one long CSV with a station column), targets temp_air
  and wind_speed (needs `pip install pvlib`; skipped with a message without it).

Each run: a subprocess of forecast-train with threads=2 (run nothing else heavy meanwhile);
printed as a markdown table of test MAE / RMSE (mean +- std over the seeds) of the model and
ridge, rlinear, persistence and seasonal naive, the fit seconds, the validation loss (scaled
units: what a recipe is chosen by, never the test scores), and whether the model is ahead of
every baseline on both; every run's numbers are also written to --out as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "benchmarks"
TRAIN = Path(sys.executable).parent / "forecast-train"
BASELINES = ("ridge", "rlinear", "persistence", "seasonal_naive")


def own_file(path: Path) -> list[str]:
    return ["data=csv", f"data.path={path}", "data.time_col=date", "data.series_col=null",
            "targets=[OT]"]


def tmy3_file(folder: Path) -> Path | None:
    """pvlib's two TMY3 files as one long CSV [station, time, weather columns]; None without
    pvlib."""
    try:
        import pandas as pd
        import pvlib
    except ImportError:
        print("pvlib is not installed (pip install pvlib): the TMY3 rows are skipped")
        return None
    data = Path(pvlib.__file__).parent / "data"
    frames = []
    for name in ("723170TYA.CSV", "703165TY.csv"):
        df, meta = pvlib.iotools.read_tmy3(data / name, coerce_year=2001, map_variables=True)
        columns = ["temp_air", "temp_dew", "relative_humidity", "pressure", "wind_speed",
                   "wind_direction", "ghi", "dni", "dhi"]
        frame = df[columns].copy()
        frame.insert(0, "time", df.index.tz_convert("UTC"))
        frame.insert(0, "station", str(meta["USAF"]))
        frames.append(frame)
    path = folder / "tmy3.csv"
    pd.concat(frames).sort_values(["station", "time"]).to_csv(path, index=False)
    return path


def rows(folder: Path) -> dict[str, list[str]]:
    table = {"nyc_weather temp": ["data=nyc_weather"],
             "city_weather avg_temp": ["data=city_weather"]}
    for name in ("ETTh1", "ETTh2"):
        table[f"{name} OT"] = own_file(SHARED / f"{name}.csv")
    for name in ("NP", "PJM"):
        table[f"EPF {name} OT"] = own_file(SHARED / "epf" / f"{name}.csv")
    tmy3 = tmy3_file(folder)
    if tmy3 is not None:
        for target in ("temp_air", "wind_speed"):
            table[f"TMY3 {target}"] = ["data=csv", f"data.path={tmy3}", "data.series_col=station",
                                       f"targets=[{target}]"]
    return table


def run(label: str, args: list[str], seed: int, extra: list[str], folder: Path) -> dict:
    out = folder / f"{label.replace(' ', '_')}_{seed}"
    command = [str(TRAIN), *args, f"seed={seed}", "threads=2", f"hydra.run.dir={out}", *extra]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{label} seed {seed} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    scores = {"model": metrics["model"], **metrics["baselines"]}
    return {name: {"mae": scores[name]["mae"], "rmse": scores[name]["rmse"]}
            for name in ("model", *BASELINES) if name in scores} | {
        "fit_seconds": metrics["seconds"]["fit"], "epochs": metrics["epochs"],
        "val_loss": metrics["val_loss"]}


def spread(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 \
        else f"{values[0]:.3f}"


def table(results: dict[str, list[dict]]) -> str:
    head = ["data, target", "model MAE", "model RMSE",
            *[f"{b} MAE / RMSE" for b in BASELINES], "fit s", "val loss", "ahead of all"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, runs in results.items():
        model = {k: [r["model"][k] for r in runs] for k in ("mae", "rmse")}
        cells = [label, spread(model["mae"]), spread(model["rmse"])]
        ahead = True
        for b in BASELINES:
            values = {k: [r[b][k] for r in runs] for k in ("mae", "rmse")}
            cells.append(f"{np.mean(values['mae']):.3f} / {np.mean(values['rmse']):.3f}")
            ahead &= all(np.mean(model[k]) < np.mean(values[k]) for k in ("mae", "rmse"))
        cells += [f"{np.mean([r['fit_seconds'] for r in runs]):.0f}",
                  f"{np.mean([r['val_loss'] for r in runs]):.4f}", "yes" if ahead else "NO"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", help="rows whose label starts with one of these")
    parser.add_argument("--out", type=Path, default=None, help="JSON of every run")
    parser.add_argument("--keep", type=Path, default=None,
                        help="a folder to keep the run folders in (default: deleted after)")
    parser.add_argument("overrides", nargs="*", help="added to every run (after --)")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            folder = args.keep
        for label, data in rows(folder).items():
            if args.only and not any(label.startswith(o) for o in args.only):
                continue
            results[label] = [run(label, data, seed, args.overrides, folder)
                              for seed in args.seeds]
            print(f"{label}: model MAE {spread([r['model']['mae'] for r in results[label]])}",
                  flush=True)
    print(table(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
