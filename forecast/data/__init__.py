"""The data layer: sources and files -> tidy long frame -> Panel (N, T, F) -> model inputs
and windows."""
