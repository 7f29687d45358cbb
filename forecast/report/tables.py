"""Scores as a person reads them: flat tables, the plain-text summary, the verdict, metrics.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.evaluation.scores import scalars


def metric_tables(metrics: dict) -> dict[str, pd.DataFrame]:
    """metrics.json as flat tables: summary (one row per forecaster), by_lead, by_series and
    by_target (one row per forecaster and lead / series / target)."""
    rows = {"model": metrics["model"], **metrics["baselines"]}
    tables = {"summary": pd.DataFrame([{"forecaster": n, **scalars(m)}
                                       for n, m in rows.items()])}
    lead = [pd.DataFrame({"forecaster": n, "lead": np.arange(1, len(m["by_lead"]["mae"]) + 1),
                          **m["by_lead"]}) for n, m in rows.items()]
    tables["by_lead"] = pd.concat(lead, ignore_index=True)
    for part, column in (("by_series", "series"), ("by_target", "target")):
        tables[part] = pd.DataFrame([{"forecaster": n, column: key, **scores}
                                     for n, m in rows.items() for key, scores in m[part].items()])
    return tables


# the units a lead is told in, longest first: a step of 3600 s is "1 hour", of 900 s "15 minutes"
LEAD_UNITS = (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1))


def lead_unit(step_seconds: float | None) -> tuple[str, float]:
    """The length of one time step -> (the unit leads are told in, that unit's count per step);
    without a known step: ("steps", 1)."""
    for name, seconds in LEAD_UNITS:
        if step_seconds and step_seconds >= seconds and step_seconds % seconds == 0:
            return name, step_seconds / seconds
    return "steps", 1.0


def duration(steps: int, step_seconds: float | None) -> str:
    """A count of time steps in the data's time unit: 24 hourly steps -> "24 hours"."""
    name, per_step = lead_unit(step_seconds)
    return f"{steps * per_step:g} {name}"


def unit_label(metrics: dict) -> str:
    """The unit of a run's scores: "z-scores" in scaled space, the targets' one unit ("degF"),
    each target's ("temp degF, humid %") when they differ, "" when none is known."""
    if metrics.get("space") == "scaled":
        return "z-scores"
    units = {t: u for t, u in (metrics.get("units") or {}).items() if u}
    if len(set(units.values())) == 1 and len(units) == len(metrics.get("units") or {}):
        return next(iter(units.values()))
    return ", ".join(f"{t} {u}" for t, u in units.items())


def summary_table(metrics: dict, unit: str | None = None) -> str:
    """Plain-text table of the model against the baselines, the best MAE marked, the unit
    (default: `unit_label`) at the end of the header. Scaled-space scores show MSE (as the
    long-horizon literature reports) where data units show RMSE."""
    unit = unit_label(metrics) if unit is None else unit
    rows = [("model", metrics["model"])] + list(metrics["baselines"].items())
    best = min(rows, key=lambda r: r[1]["mae"])[0]
    folds = "mae_std" in metrics["model"]
    second = "mse" if metrics.get("space") == "scaled" else "rmse"
    head = f"{'':2}{'forecaster':<16}{'MAE':>9}" + (f"{'+-':>8}" if folds else "")
    lines = [(head + f"{second.upper():>9}{'MASE':>8}{'skill':>8}  {unit}").rstrip()]
    for name, m in rows:
        mark = "*" if name == best else " "
        std = f"{m['mae_std']:>8.3f}" if folds else ""
        lines.append(f"{mark:2}{name:<16}{m['mae']:>9.3f}{std}{m[second]:>9.3f}"
                     f"{m.get('mase', float('nan')):>8.3f}{m.get('skill', float('nan')):>8.3f}")
    return "\n".join(lines)


def verdict(metrics: dict) -> str:
    """A few plain sentences weighing test MAE and RMSE: the baselines the model beats on both,
    those that beat it on both, where the two scores disagree (with the values), and whether it
    does worse than repeating the last value (persistence)."""
    model, baselines = metrics["model"], metrics["baselines"]
    lower = {key: {n for n, m in baselines.items() if _below(m.get(key), model.get(key))}
             for key in ("mae", "rmse")}
    both = [n for n in baselines if n in lower["mae"] and n in lower["rmse"]]
    if not lower["mae"] | lower["rmse"]:
        return "The model beats every baseline on test MAE and RMSE."
    out = []
    if not lower["mae"]:
        out.append("The model beats every baseline on test MAE.")
    if both:
        out.append(f"The model LOSES to {', '.join(both)} on test MAE and RMSE.")
    out += [_disagreement(n, baselines[n], model) for n in baselines
            if n in lower["mae"] ^ lower["rmse"]]
    if "persistence" in lower["mae"] | lower["rmse"]:
        on = " and ".join(k.upper() for k in ("mae", "rmse") if "persistence" in lower[k])
        out.append(f"It does worse than repeating the last value (persistence) on {on}.")
    return " ".join(out)


def _below(value, than) -> bool:
    """value < than, False when either is undefined (None or NaN): no loss is claimed then."""
    return value is not None and than is not None and value < than


def _disagreement(name: str, baseline: dict, model: dict) -> str:
    """Where MAE and RMSE rank the model and one baseline differently, with both pairs."""
    values = (f"(MAE {model['mae']:.3f} vs {baseline['mae']:.3f}, RMSE {model['rmse']:.3f} vs "
              f"{baseline['rmse']:.3f})")
    if baseline["mae"] < model["mae"]:
        return (f"The model LOSES to {name} on test MAE but beats it on RMSE {values}: the two "
                "disagree, the model makes fewer large errors.")
    return (f"The model beats {name} on test MAE but LOSES to it on RMSE {values}: the two "
            "disagree, the model makes more large errors.")


def finite(obj):
    """obj with every NaN or infinite number (also in numpy scalars) as None: JSON has no NaN,
    and a score that is undefined (a constant target, an overflow) must not read as a number."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(obj, path: Path) -> None:
    """Strict JSON (no NaN or Infinity tokens): undefined numbers are written as null."""
    path.write_text(json.dumps(finite(obj), indent=2, default=float, allow_nan=False))
