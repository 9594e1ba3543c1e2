"""MLflow bookkeeping, used by train.py and the sweeper; nothing here trains.

store (where the runs live), sqlite_wal (how its SQLite file and Optuna's are written),
run (one training run), sweep_run (a sweep's parent run) and history_plot (its
optimization history), registry (the champion model), stale_runs (runs of killed
processes), environment (what a run executed in), tags and redaction (what every run
records, without credentials).
"""
