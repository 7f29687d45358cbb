"""`forecast-train`: fit, test, evaluate against baselines, plot. Returns the sweep objective."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import pandas as pd
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from forecast import config, datasets, pipeline, plots, report
from forecast.module import Forecaster
from forecast.panel import season_length, to_panel

log = logging.getLogger(__name__)
config.register()


def load_panel(data: DictConfig, seed: int):
    df = datasets.load(
        name=data.name, path=data.path, series_col=data.series_col, time_col=data.time_col,
        features=data.features, tz=data.tz, na_values=data.na_values,
        valid_range=OmegaConf.to_container(data.valid_range), n_series=data.n_series,
        n_steps=data.n_steps, seed=seed,
    )
    return to_panel(df, data.freq)


def build_trainer(cfg: DictConfig, run_dir: Path) -> pl.Trainer:
    checkpoint = pl.callbacks.ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="best", monitor="val/loss", mode="min",
        save_last=True, save_top_k=1,
    )
    stop = pl.callbacks.EarlyStopping(monitor="val/loss", patience=cfg.early_stopping_patience)
    logger = instantiate(cfg.logger, save_dir=str(run_dir)) if cfg.logger else False
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    return pl.Trainer(callbacks=[checkpoint, stop], logger=logger,
                      default_root_dir=str(run_dir), **kwargs)


def run(cfg: DictConfig, run_dir: Path) -> float:
    """One run into `run_dir`; returns the best validation loss (scaled MSE)."""
    seconds, clock = {}, time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    pl.seed_everything(cfg.seed, workers=True)
    panel = load_panel(cfg.data, cfg.seed)
    split = (cfg.data.split.train, cfg.data.split.val, cfg.data.split.test)
    prep = pipeline.prepare(panel, cfg.lookback, cfg.horizon, cfg.targets, split,
                            cfg.data.calendar, cfg.data.mask_features)
    dm = pipeline.datamodule(prep, cfg.data.batch_size, cfg.data.num_workers)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    module = Forecaster(pipeline.net_kwargs(prep, model), lr=model["lr"],
                        weight_decay=model["weight_decay"])
    seconds["prepare"], clock = time.perf_counter() - clock, time.perf_counter()

    trainer = build_trainer(cfg, run_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    pipeline.write_json(pipeline.data_description(prep), run_dir / "checkpoints" / "data.json")
    trainer.fit(module, datamodule=dm)
    seconds["fit"], clock = time.perf_counter() - clock, time.perf_counter()

    best = trainer.checkpoint_callback.best_model_path or None
    trainer.test(module, datamodule=dm, ckpt_path=best, verbose=False)
    model_scaled = pipeline.forecast(trainer, module, dm, ckpt_path=best)
    season = cfg.evaluate.season or season_length(panel.times)
    baseline = pipeline.baseline_forecasts(prep, cfg.evaluate.baselines, season, cfg.seed)
    quantiles = model["quantiles"]
    metrics = pipeline.evaluate(prep, model_scaled, baseline, season, cfg.evaluate.space,
                                quantiles)
    forecasts = pipeline.forecast_table(prep, model_scaled, quantiles)
    seconds["evaluate"], clock = time.perf_counter() - clock, time.perf_counter()

    write_plots(run_dir, forecasts, metrics, prep.targets, cfg.evaluate.plot_days)
    gates = pipeline.gate_activations(module, dm)
    if gates:
        plots.save(plots.gate_distributions(gates), run_dir / "plots" / "gates.png")
    seconds["plots"] = time.perf_counter() - clock
    best_val = float(trainer.checkpoint_callback.best_model_score or float("nan"))
    metrics.update({
        "windows": {**{k: len(v) for k, v in prep.indices.items()},
                    "dropped": sum(prep.dropped.values()), "dropped_by_split": prep.dropped},
        "val_loss": best_val, "epochs": trainer.current_epoch, "seconds": seconds,
        "lookback": cfg.lookback, "horizon": cfg.horizon, "targets": prep.targets,
    })
    pipeline.write_json(metrics, run_dir / "metrics.json")
    forecasts.to_parquet(run_dir / "forecasts.parquet", index=False)
    tables = write_tables(run_dir, metrics)
    title = f"{cfg.model.name} on {cfg.data.name}: {prep.targets}, lookback {cfg.lookback}, " \
            f"horizon {cfg.horizon}"
    page = report.run_page(title, pipeline.summary_table(metrics), pipeline.verdict(metrics),
                           tables, sorted((run_dir / "plots").glob("*.png")))
    (run_dir / "report.html").write_text(page)
    print(f"\nTest scores on {len(prep.indices['test'])} windows x {cfg.horizon} leads "
          f"of {prep.targets} ({metrics['space']} units):")
    print(pipeline.summary_table(metrics))
    print(pipeline.verdict(metrics))
    print(f"Run folder: {run_dir}")
    return best_val


def write_plots(run_dir: Path, forecasts: pd.DataFrame, metrics: dict, targets, days: int):
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    for target in targets:
        fig = plots.forecasts_vs_actuals(forecasts, target, days=days)
        plots.save(fig, out / f"forecasts_{target}.png")
    everyone = {"model": metrics["model"], **metrics["baselines"]}
    by_lead = {k: m["by_lead"]["mae"] for k, m in everyone.items()}
    plots.save(plots.error_by_lead(by_lead, "mae"), out / "mae_by_lead.png")
    by_series = {k: m["by_series"] for k, m in everyone.items()}
    plots.save(plots.error_by_series(by_series, "mae"), out / "mae_by_series.png")
    plots.save(plots.residuals(forecasts), out / "residuals.png")
    history = run_dir / "logs" / "metrics.csv"
    if history.is_file():
        plots.save(plots.learning_curves(pd.read_csv(history)), out / "learning_curves.png")


def write_tables(run_dir: Path, metrics: dict) -> dict[str, pd.DataFrame]:
    out = run_dir / "tables"
    out.mkdir(exist_ok=True)
    tables = pipeline.metric_tables(metrics)
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    return tables


@hydra.main(version_base="1.3", config_path="pkg://forecast.conf", config_name="train")
def main(cfg: DictConfig) -> float:
    return run(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
