"""Append a markdown table of an experiment's top runs from MLflow to its diary entry.

poetry run python -m src.utils.commands.diary model01 [--top 5]
"""

import argparse
import sys
from datetime import datetime
from pathlib import Path

from src.utils.commands.model_loading import RunNotFoundError, ranked_runs
from src.utils.paths import PROJECT_ROOT

DIARY_DIR = PROJECT_ROOT / "diary"
# The params worth a column; the rest of the resolved config is one click away in the UI.
KEY_PARAMS = ("learning_rate", "batch_size", "trainer.max_epochs", "model.channels")
METRICS = ("val/acc", "val/loss", "test/acc")


def top_runs_table(experiment_name: str, top: int = 5) -> str:
    """The `top` FINISHED training runs by their optimized metric, as a markdown table."""
    metric, ranked = ranked_runs(experiment_name)
    header = ["run", "run id", f"best {metric}", *KEY_PARAMS, *METRICS, "UI path"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for value, run in ranked[:top]:
        params = [run.data.params.get(p, "") for p in KEY_PARAMS]
        metrics = [_fmt(run.data.metrics.get(m)) for m in METRICS]
        ui_path = f"#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        row = [run.info.run_name, f"`{run.info.run_id}`", _fmt(value), *params, *metrics, ui_path]
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def append_to_diary(experiment_name: str, top: int = 5, diary_dir: Path = DIARY_DIR) -> Path:
    """Append the table under a dated heading; create the entry if it does not exist."""
    table = top_runs_table(experiment_name, top)
    entry = diary_dir / f"{experiment_name}.md"
    if not entry.exists():
        entry.write_text(f"# {experiment_name}\n", encoding="utf-8")
    stamp = f"{datetime.now():%Y-%m-%d %H:%M}"
    with entry.open("a", encoding="utf-8") as file:
        file.write(f"\n### Top runs from MLflow ({stamp})\n\n{table}")
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.utils.commands.diary", description=__doc__)
    parser.add_argument("experiment", help="MLflow experiment name, e.g. model01")
    parser.add_argument("--top", type=int, default=5, help="how many runs (default 5)")
    args = parser.parse_args(argv)
    try:
        entry = append_to_diary(args.experiment, args.top)
    except RunNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Appended the top runs of {args.experiment} to {entry.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
