"""Where things live in this project, from this file's location (the project root), never
the cwd: every script, notebook and the MLflow UI see the same folders wherever they start."""

import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "config"
LOGS_DIR = PROJECT_ROOT / "logs"
LIGHTNING_LOGS_DIR = LOGS_DIR / "lightning"
STAGE_LOGS_DIR = LOGS_DIR / "logging_"
MLRUNS_DIR = LOGS_DIR / "mlruns"

# Metrics where smaller is better; every other metric is maximised.
_MINIMIZED_METRIC_WORDS = ("loss", "error", "mse", "mae")


def _project_of(path: Path) -> Path | None:
    """The project folder that holds `path` (the one with src/utils/paths.py), if any."""
    return next((f for f in path.parents if (f / "src" / "utils" / "paths.py").is_file()), None)


def check_one_project() -> None:
    """Stop when the running script belongs to another project than this `src`. With two
    projects installed (editable) in one environment, `import src` finds the one whose .pth
    sorts first: the script's runs, studies and models would silently land in the other one.
    The project's own entry points put their project first on sys.path; this catches others."""
    entry = getattr(sys.modules.get("__main__"), "__file__", None)
    entry_root = _project_of(Path(entry).resolve()) if entry else None
    if entry_root is not None and entry_root != PROJECT_ROOT:
        raise SystemExit(
            f"error: {entry} belongs to the project in {entry_root}, but `import src` found "
            f"the project in {PROJECT_ROOT} (both are installed in this Python environment). "
            f"Put its own project first: start the script with "
            f"`sys.path.insert(0, {str(entry_root)!r})` before importing src (as train.py "
            f"does), or run it with PYTHONPATH={entry_root}, or give each project its own "
            "environment (`poetry install` in each folder)."
        )


check_one_project()


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
