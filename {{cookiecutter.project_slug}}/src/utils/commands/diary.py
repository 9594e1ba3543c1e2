"""Append a markdown table of an experiment's top runs from MLflow to its diary entry.

poetry run python -m src.utils.commands.diary model01 [--top 5]
"""

from __future__ import annotations

import argparse
import math
import sys
from datetime import datetime
from pathlib import Path

from src.utils.commands.model_loading import RunNotFoundError, client, get_experiment, is_trial_run
from src.utils.paths import PROJECT_ROOT, is_minimized
from src.utils.tracking.registry import best_metric_value

DIARY_DIR = PROJECT_ROOT / "diary"
# The params worth a column; the rest of the resolved config is one click away in the UI.
KEY_PARAMS = ("learning_rate", "batch_size", "trainer.max_epochs", "model.channels")
METRICS = ("val/acc", "val/loss", "test/acc")


def top_runs_table(experiment_name: str, top: int = 5) -> str:
    """The `top` FINISHED training runs by their optimized metric, as a markdown table."""
    mlflow_client = client()
    experiment = get_experiment(experiment_name, mlflow_client)
    runs = [
        r
        for r in mlflow_client.search_runs(
            [experiment.experiment_id], "attributes.status = 'FINISHED'", max_results=1000
        )
        if is_trial_run(r)
    ]
    if not runs:
        raise RunNotFoundError(
            f"Experiment {experiment_name!r} has no finished training runs yet: train first"
        )
    metric = runs[0].data.params["optimized_metric"]
    runs = [r for r in runs if r.data.params.get("optimized_metric") == metric]
    scored = [(best_metric_value(r, metric, mlflow_client), r) for r in runs]
    scored = [(v, r) for v, r in scored if not math.isnan(v)]
    scored.sort(key=lambda pair: pair[0], reverse=not is_minimized(metric))
    header = ["run", "run id", f"best {metric}", *KEY_PARAMS, *METRICS, "UI path"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for value, run in scored[:top]:
        params = [run.data.params.get(p, "") for p in KEY_PARAMS]
        metrics = [_fmt(run.data.metrics.get(m)) for m in METRICS]
        ui_path = f"#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"
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
