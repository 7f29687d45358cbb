"""The run's plots read at a glance: legends beside the data, not over it; the model's dot never
hides a baseline's; learning curves on a plain axis with whole epochs and the kept epoch marked;
every axis labelled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.report import plots


def _legend_outside_axes(fig, ax) -> bool:
    """Whether the axes' legend lies wholly outside its plotting area (drawn, in pixels)."""
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    area = ax.get_window_extent()
    return legend.x0 >= area.x1 or legend.y0 >= area.y1 or legend.x1 <= area.x0 \
        or legend.y1 <= area.y0


def test_error_by_lead_keeps_its_legend_off_the_lines():
    by_lead = {name: list(np.linspace(1, 3, 24) + i) for i, name in
               enumerate(["model", "persistence", "seasonal_naive", "climatology", "ridge"])}
    fig = plots.error_by_lead(by_lead, "mae", "degF", ("hours", 1.0))
    assert _legend_outside_axes(fig, fig.axes[0])


def test_sweep_comparison_keeps_both_legends_off_the_data():
    board = pd.DataFrame({"config": ["model=lstm", "model=gru"], "test_mae": [3.0, 3.2],
                          "test_mae_std": [0.1, 0.2], "persistence_mae": [5.0, 5.0],
                          "ridge_mae": [3.1, 3.1]})
    fig = plots.sweep_comparison(board, {"model=lstm": np.arange(1, 25.0),
                                         "model=gru": np.arange(2, 26.0)}, "degF")
    assert all(_legend_outside_axes(fig, ax) for ax in fig.axes)


def test_the_model_dot_does_not_hide_a_baseline_on_the_same_value():
    same = {"A": {"mae": 2.0}, "B": {"mae": 3.0}}
    fig = plots.error_by_series({"model": same, "ridge": same}, "mae", "degF")
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    model, ridge = lines["model"], lines["ridge"]
    assert ridge.get_zorder() > model.get_zorder()  # drawn on top, inside the larger ring
    assert model.get_markersize() > ridge.get_markersize()
    assert _legend_outside_axes(fig, fig.axes[0])


def _history(epochs: int, best: int) -> pd.DataFrame:
    val = [0.3 + 0.02 * abs(e - best) for e in range(epochs)]
    rows = [{"epoch": e, "step": e, "train/loss_epoch": 0.5 - 0.01 * e, "val/loss": v}
            for e, v in enumerate(val)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("epochs", [2, 7])
def test_learning_curves_plain_axis_whole_epochs_and_the_kept_epoch(epochs):
    fig = plots.learning_curves(_history(epochs, best=1), "mae")
    ax = fig.axes[0]
    assert ax.get_yscale() == "linear"
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    marks = [line for line in ax.get_lines() if "best validation (epoch 2)" in line.get_label()]
    assert len(marks) == 1 and marks[0].get_xdata()[0] == 2  # epoch 1 (0-based) is epoch 2
    assert _legend_outside_axes(fig, ax)


def test_residuals_label_both_axes():
    table = pd.DataFrame({"target": "t0", "lead": np.tile([1, 2], 50),
                          "forecast": np.random.default_rng(0).normal(size=100),
                          "actual": np.zeros(100)})
    fig = plots.residuals(table, leads=(1, 2), units={"t0": "degF"}, lead=("hours", 1.0))
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() == "density"
