"""The run page (report.html): summary, verdict, interval coverage, every plot and the tables in
one self-contained file, rendered from the package's jinja2 template (templates/run.html.j2)
with autoescaping on. An undefined number is shown as an em dash, a column undefined for every
row is left out (named under its table), and tables scroll inside their own box."""

from __future__ import annotations

import base64
import html
import math
import numbers
import re
from collections.abc import Sequence
from pathlib import Path

import jinja2
import markupsafe
import pandas as pd

DASH = "\u2014"  # an undefined number

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1em; max-width: 1100px;
  color: #222; }
h1 { overflow-wrap: anywhere; }
.scroll { overflow-x: auto; max-width: 100%; margin: 0.5em 0 1.5em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; height: auto; border: 1px solid #eee; margin: 0.5em 0 1.5em; }
pre { background: #f7f7f7; padding: 0.8em; margin: 0; } .verdict { font-weight: bold; }
.note { color: #555; font-size: 0.9em; }
table.board { table-layout: fixed; width: 100%; font-size: 0.85em; }
.board td, .board th { overflow-wrap: anywhere; padding: 0.25em 0.4em; white-space: normal; }
.board td:nth-child(2), .board td:nth-child(3), .board th:nth-child(2), .board th:nth-child(3)
  { text-align: left; }
.board col.rank { width: 5%; } .board col.config { width: 22%; } .board col.runs { width: 11%; }
.board col.wide { width: 10%; }
"""

BY_LEAD_PLOT = "mae_by_lead.png"  # by_lead is shown as this plot, not as a table

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("forecast.report", "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True)
_NAN_WORD = re.compile(r"\b(nan|NaN|None)\b")


def image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<h3>{html.escape(path.stem)}</h3><img alt="{html.escape(path.stem)}" ' \
           f'src="data:image/png;base64,{data}">'


def undefined(value) -> bool:
    """None, NaN and the infinities: numbers a page shows as an em dash."""
    if value is None:
        return True
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return not math.isfinite(float(value))
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def cell(value) -> str:
    """One table cell as text: numbers to four significant digits, undefined ones a dash."""
    if undefined(value):
        return DASH
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):.4g}"
    return str(value)


def shown_table(name: str, table: pd.DataFrame, max_rows: int = 60) -> dict:
    """A table as the template reads it: columns undefined in every row dropped (and named),
    cells as text, at most `max_rows` rows (the rest counted)."""
    empty = [c for c in table.columns if len(table) and all(undefined(v) for v in table[c])]
    kept = table.drop(columns=empty)
    rows = [[cell(v) for v in row] for row in kept.head(max_rows).itertuples(index=False)]
    return {"name": name, "columns": [str(c) for c in kept.columns], "rows": rows,
            "more": max(len(table) - max_rows, 0), "dropped": [str(c) for c in empty]}


def plain(text: str) -> str:
    """Text with the words nan / NaN / None (undefined numbers) replaced by a right-aligned
    dash of the same width."""
    return _NAN_WORD.sub(lambda m: DASH.rjust(len(m.group())), text)


def run_page(
    title: str,
    summary: str,
    verdict: str,
    tables: dict[str, pd.DataFrame],
    images: Sequence[Path],
    intervals: str = "",
) -> str:
    """One self-contained page: the summary table, the verdict, the intervals' test coverage and
    width (`intervals`, one line each, as evaluation.intervals.describe writes them), every
    plot (embedded), and the tables but by_lead (its plot, mae_by_lead.png, shows it)."""
    plots = [{"name": p.stem, "src": "data:image/png;base64,"
              + base64.b64encode(p.read_bytes()).decode("ascii")} for p in images]
    by_lead = BY_LEAD_PLOT if any(p.name == BY_LEAD_PLOT for p in images) else ""
    shown = [shown_table(n, t) for n, t in tables.items() if not (n == "by_lead" and by_lead)]
    lines = [plain(line) for line in intervals.splitlines() if line.strip()]
    return _ENV.get_template("run.html.j2").render(
        title=title, style=markupsafe.Markup(STYLE), summary=plain(summary), verdict=plain(verdict),
        intervals=lines, plots=plots, by_lead=by_lead, tables=shown)
