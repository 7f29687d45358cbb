"""The runs layer: the commands (forecast-train, forecast-predict), run folders, outputs and
loggers."""
