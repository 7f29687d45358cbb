"""The evaluation layer: metrics, baselines, scoring of the test windows, backtest folds,
prediction intervals."""
