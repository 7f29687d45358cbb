"""The run page (report.html): summary, verdict, every table and plot in one self-contained file."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0 1.5em; }
pre { background: #f7f7f7; padding: 0.8em; } .verdict { font-weight: bold; }
table.board { table-layout: fixed; width: 100%; font-size: 0.85em; }
.board td, .board th { overflow-wrap: anywhere; padding: 0.25em 0.4em; }
.board td:nth-child(2), .board td:nth-child(3), .board th:nth-child(2), .board th:nth-child(3)
  { text-align: left; }
.board col.rank { width: 5%; } .board col.config { width: 22%; } .board col.runs { width: 11%; }
.board col.wide { width: 10%; }
"""


def image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<h3>{html.escape(path.stem)}</h3><img alt="{html.escape(path.stem)}" ' \
           f'src="data:image/png;base64,{data}">'


def _table(name: str, table: pd.DataFrame, max_rows: int = 60) -> str:
    shown = table.head(max_rows)
    more = f"<p>({len(table) - max_rows} more rows in tables/{name}.csv)</p>" \
        if len(table) > max_rows else ""
    return f"<h3>{html.escape(name)}</h3>" + shown.to_html(index=False, float_format="%.4g",
                                                          border=0) + more


def run_page(
    title: str,
    summary: str,
    verdict: str,
    tables: dict[str, pd.DataFrame],
    images: Sequence[Path],
) -> str:
    """One self-contained page: the summary table, the verdict, every table and plot (embedded)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<pre>{html.escape(summary)}</pre><p class='verdict'>{html.escape(verdict)}</p>",
             "<h2>Plots</h2>", *(image(p) for p in images),
             "<h2>Tables</h2>", *(_table(n, t) for n, t in tables.items()),
             "</body></html>"]
    return "\n".join(parts)
