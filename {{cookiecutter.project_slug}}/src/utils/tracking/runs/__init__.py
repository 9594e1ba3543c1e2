"""One training run in MLflow: opened, tagged with where and how it ran, written to (by a
writer thread in sweeps), always closed."""
