"""forecast: LSTM-family forecasting of weather-style panels, scored against baselines.

The Python API (forecast.api): `fit` a run, `load_run` a run folder, `Run.predict`."""

from forecast.api import Run, fit, load_run

__all__ = ["Run", "fit", "load_run"]
