"""The EPF day-ahead price benchmark (../shared/benchmarks/epf/README.md): `+experiment=epf` on
Nord Pool and PJM, scored against the protocol's own naive forecast and the published rows.

    python benchmarks/epf.py [--runs <NP run folder> <PJM run folder>] [-- override ...]

Without --runs it trains both (forecast-train +experiment=epf data.path=..., threads=2, seed 0,
plus the overrides after --; about 8 minutes each on 2 cores). It then reads each run's
forecasts.parquet and metrics.json and prints, over the same 728 test days: the model's MAE,
the protocol's naive forecast (the price one week earlier on Mondays, Saturdays and Sundays, one
day earlier otherwise), which the published table scores at NP 3.165 and PJM 4.846, so a match
checks that the test days and hours are the published ones; the run's baselines; and the
published models (recalibrated every day; this recipe is fitted once).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
EPF = ROOT.parent / "shared" / "benchmarks" / "epf"
TRAIN = Path(sys.executable).parent / "forecast-train"
sys.path.insert(0, str(ROOT))
from forecast.evaluation.published import EPF_MODELS, EPF_TABLE  # noqa: E402


def train(market: str, folder: Path, overrides: list[str]) -> Path:
    out = folder / market
    subprocess.run([str(TRAIN), "+experiment=epf", f"data.path={EPF / f'{market}.csv'}",
                    "threads=2", f"hydra.run.dir={out}", *overrides], check=True,
                   capture_output=True)
    return out


def naive_mae(market: str, forecasts: pd.DataFrame) -> float:
    """The protocol's naive forecast at the forecasts' times: a week back on Mon/Sat/Sun."""
    prices = pd.read_csv(EPF / f"{market}.csv", skipinitialspace=True)
    prices["time"] = pd.to_datetime(prices["date"], format="%Y/%m/%d %H:%M", utc=True)
    price = prices.set_index("time")["OT"]
    times = pd.DatetimeIndex(forecasts["time"])
    back = pd.to_timedelta([7 if d in (0, 5, 6) else 1 for d in times.day_of_week], unit="D")
    return float((price.reindex(times - back).to_numpy() - forecasts["actual"].to_numpy())
                 .__abs__().mean())


def report(market: str, run: Path) -> list[str]:
    metrics = json.loads((run / "metrics.json").read_text())
    forecasts = pd.read_parquet(run / "forecasts.parquet")
    days = forecasts["time"].dt.normalize().nunique()
    lines = [f"{market}: {days} test days x {forecasts['lead'].nunique()} hours, "
             f"fit {metrics['seconds']['fit']:.0f} s ({metrics['epochs']} epochs, one fit)",
             f"  {'this run':<34}{metrics['model']['mae']:7.3f}",
             f"  {'naive (protocol), recomputed':<34}{naive_mae(market, forecasts):7.3f}"]
    lines += [f"  {name:<34}{scores['mae']:7.3f}"
              for name, scores in metrics["baselines"].items()]
    lines += [f"  published {name:<24}{value:7.3f}"
              for name, value in zip(EPF_MODELS, EPF_TABLE[market], strict=True)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs=2, type=Path, metavar=("NP", "PJM"))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        runs = args.runs or [train(m, Path(scratch), args.overrides) for m in ("NP", "PJM")]
        for market, run in zip(("NP", "PJM"), runs, strict=True):
            print("\n".join(report(market, run)))


if __name__ == "__main__":
    main()
