"""The report layer: score tables and verdicts, plots, the run page and the sweep leaderboard."""
