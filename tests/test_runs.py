"""Runs you can trust: reproducible shuffling, resume, determinism, DDP sharding, provenance,
the NaN stop and a leakage check across the test cutoff."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import build_module, inputs_of, load_data, net_kwargs

from forecast.data import prepared
from forecast.data.panel import Panel, fingerprint, to_panel
from forecast.data.windows import EpochBatchSampler
from forecast.evaluation import scoring

TRAIN = str(Path(sys.executable).parent / "forecast-train")
FAST = ["data=synthetic", "trainer=fast", "data.n_steps=800"]


def _train(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([TRAIN, *FAST, f"hydra.run.dir={run_dir}", *overrides],
                          capture_output=True, text=True, timeout=600)


def _model_scores(run_dir: Path) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    return {"mae": m["model"]["mae"], "rmse": m["model"]["rmse"], "val_loss": m["val_loss"],
            "by_lead": m["model"]["by_lead"]["mae"]}


# ---- the sampler ------------------------------------------------------------------------------

def test_shuffle_depends_on_seed_and_epoch_only():
    a, b = EpochBatchSampler(1000, 64, shuffle=True, seed=3), EpochBatchSampler(1000, 64, True, 3)
    a.set_epoch(5)
    list(b)  # b has been iterated before: the order of an epoch must not depend on history
    b.set_epoch(5)
    assert [batch.tolist() for batch in a] == [batch.tolist() for batch in b]
    a.set_epoch(6)
    assert [batch.tolist() for batch in a] != [batch.tolist() for batch in b]
    assert sorted(i for batch in a for i in batch) == list(range(1000))


def test_ranks_take_disjoint_batches_of_equal_count():
    whole = list(EpochBatchSampler(1000, 64, shuffle=True, seed=0))  # 16 batches
    shards = [list(EpochBatchSampler(1000, 64, True, 0, rank=r, world=3)) for r in range(3)]
    assert [len(s) for s in shards] == [6, 6, 6]  # 16 batches -> 6 each, two wrapped around
    seen = [tuple(b) for s in shards for b in s]
    assert set(seen) == {tuple(b) for b in whole}  # every batch is trained on
    # before the wrap-around that evens the counts, ranks 0 and 1 share no batch
    assert len(set(seen[:5]) & set(seen[6:11])) == 0


# ---- runs -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_resume_ends_where_a_straight_run_ends_and_refuses_other_settings(tmp_path):
    """A run resumed in a second process ends with the straight run's scores to the last digit:
    same seed, same metrics across processes, which is what reproducibility needs."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert _train(straight, "trainer.max_epochs=3").returncode == 0
    record = json.loads((straight / "provenance.json").read_text())
    assert record["versions"]["torch"] == torch.__version__
    panel = to_panel(load_data("synthetic", n_steps=800), "h")
    assert record["data_fingerprint"] == fingerprint(panel) and record["data_shape"] == [3, 800, 3]

    first = _train(resumed, "trainer.max_epochs=1")
    assert first.returncode == 0 and _model_scores(resumed) != _model_scores(straight)
    second = _train(resumed, "trainer.max_epochs=3", "resume=true")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming from" in second.stdout + second.stderr
    assert _model_scores(resumed) == _model_scores(straight)
    # the learning log holds the epochs before the interruption too, as the straight run's does
    log, whole = (pd.read_csv(run / "logs" / "metrics.csv") for run in (resumed, straight))
    epochs = sorted(log.dropna(subset=["val/loss"])["epoch"])
    assert epochs == sorted(whole.dropna(subset=["val/loss"])["epoch"]) == [0, 1, 2]
    np.testing.assert_allclose(log.dropna(subset=["val/loss"])["val/loss"],
                               whole.dropna(subset=["val/loss"])["val/loss"], rtol=1e-6)
    for name in ("train/loss_epoch", "train/loss_step"):  # the module's own epoch sums too
        np.testing.assert_allclose(log[name].dropna(), whole[name].dropna(), rtol=1e-6)

    # resuming with other model settings would continue a different model: refused, untouched
    done = _train(resumed, "trainer.max_epochs=4", "resume=true", "model.loss=mse",
                  "model.residual=false")
    assert done.returncode == 2
    said = done.stderr + done.stdout
    assert "trained with other settings" in said
    assert "'loss': ('mae', 'mse')" in said and "'net.residual': (True, False)" in said
    assert json.loads((resumed / "metrics.json").read_text())["epochs"] == 3


@pytest.mark.slow
def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    done = _train(tmp_path / "new", "resume=true")
    assert done.returncode == 2
    assert "resume=True: no checkpoint" in done.stderr + done.stdout


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(tmp_path):
    done = _train(tmp_path / "ddp", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                  "trainer.max_epochs=2", "+trainer.limit_train_batches=6")
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert np.isfinite(metrics["model"]["mae"]) and metrics["epochs"] == 2
    assert (tmp_path / "ddp" / "checkpoints" / "best.ckpt").is_file()


def test_fingerprint_sees_any_change():
    panel = to_panel(load_data("synthetic", n_steps=200), "h")
    changed = panel.values.copy()
    changed[1, 150, 0] += 0.001
    other = Panel(changed, panel.ids, panel.times, panel.features, panel.freq)
    assert fingerprint(panel) == fingerprint(panel)
    assert fingerprint(other) != fingerprint(panel)


# ---- a loss that is not finite stops the run ------------------------------------------------

def test_nan_loss_stops_with_the_step_and_a_remedy():
    module = build_module({"n_features": 3, "horizon": 4, "n_targets": 1, "hidden_size": 8})
    x, y = torch.randn(5, 10, 3), torch.full((5, 4, 1), float("nan"))
    with pytest.raises(FloatingPointError, match="train/loss became nan at step 0; lower model.lr"):
        module.training_step((x, y, torch.zeros(5, dtype=torch.long)), 0)


# ---- leakage ----------------------------------------------------------------------------------

def test_values_after_the_test_cutoff_change_nothing_before_it():
    panel = to_panel(load_data("synthetic", n_steps=900), "h")
    lookback, horizon = 24, 12
    prep = prepared.prepare(panel, lookback, horizon, ["temp"], (0.6, 0.2, 0.2))
    cutoff = prep.bounds["test"][0] + 60  # a time inside the test span
    perturbed = panel.values.copy()
    perturbed[:, cutoff:] = perturbed[:, cutoff:] * 3 + 50
    other = Panel(perturbed, panel.ids, panel.times, panel.features, panel.freq)
    prep2 = prepared.prepare(other, lookback, horizon, ["temp"], (0.6, 0.2, 0.2))

    np.testing.assert_array_equal(prep.scaler.mean, prep2.scaler.mean)
    np.testing.assert_array_equal(prep.scaler.scale, prep2.scaler.scale)
    index = prep.indices["test"]
    before = index[:, 1] + lookback + horizon <= cutoff  # windows entirely before the cutoff
    assert before.any() and not before.all()
    names = list(scoring.BASELINES)
    base, base2 = ({name: f(p.indices["test"]) for name, f in
                    scoring.baseline_forecasters(p, names, 24).items()} for p in (prep, prep2))
    for name in scoring.BASELINES:
        np.testing.assert_array_equal(base[name][before], base2[name][before], err_msg=name)
    module = build_module(net_kwargs(prep, {"hidden_size": 8}))
    module.eval()
    with torch.no_grad():
        steps = index[before, 1][:, None] + np.arange(lookback)  # (K, L)
        forecasts = [module(torch.as_tensor(inputs_of(p)[index[before, 0][:, None], steps]))
                     for p in (prep, prep2)]
    torch.testing.assert_close(forecasts[0], forecasts[1], rtol=0, atol=0)
    after = ~before
    assert not np.array_equal(base["persistence"][after], base2["persistence"][after])
