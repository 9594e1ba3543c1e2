"""Where things live in this project, resolved from the project root, never the cwd.

Every script, notebook and the MLflow UI see the same folders whichever directory they
are started from, because all paths hang off the location of this file.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "config"
DATA_DIR = PROJECT_ROOT / "_data" / "data"
FEATURE_DIR = PROJECT_ROOT / "_data" / "feature"
LOGS_DIR = PROJECT_ROOT / "logs"
LIGHTNING_LOGS_DIR = LOGS_DIR / "lightning"
STAGE_LOGS_DIR = LOGS_DIR / "logging_"
MLRUNS_DIR = LOGS_DIR / "mlruns"
OPTUNA_DB = LOGS_DIR / "optuna.db"

# Metrics where smaller is better; every other metric is maximised.
_MINIMIZED_METRIC_WORDS = ("loss", "error", "mse", "mae")


def stage_log_dir(stage_and_name: str) -> str:
    """The Python-logging folder of one stage, e.g. 'model/model01'; created on demand."""
    folder = STAGE_LOGS_DIR / stage_and_name
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def is_minimized(metric: str) -> bool:
    """True for loss-like metrics (val/loss), False for score-like ones (val/acc)."""
    return any(word in metric.lower() for word in _MINIMIZED_METRIC_WORDS)


def metric_direction(metric: str, if_minimized: str, if_maximized: str) -> str:
    """`${metric_direction:val/acc,min,max}` -> 'max': one switch for every consumer."""
    return if_minimized if is_minimized(metric) else if_maximized
