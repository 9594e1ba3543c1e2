"""MLflow bookkeeping, used by train.py and the sweeper; nothing here trains, and an
experiment rarely needs to change it.

store/ (where the runs live, how the SQLite file is written, credentials kept out, runs of
killed processes), runs/ (one training run: its tags, environment, system metrics, the
sweep's writer thread, which run to resume), registry (the champion model).
"""
