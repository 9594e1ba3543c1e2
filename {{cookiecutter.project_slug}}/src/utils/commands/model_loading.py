"""Find a run in the MLflow store and load what it logged: the notebook's and server's logic.

    run = resolve_run("model01")               # the best trial run by its optimized metric
    run = resolve_run("model01", "champion")   # the registry's champion (see model_registry)
    run = resolve_run("model01", "3f2a...")    # a run id (or a unique run name) from the UI
    model = load_model("model01", run_id)      # the logged MLflow model, a torch nn.Module

"Best" compares each run's best epoch of its `optimized_metric` (what the sweeper optimised
and the checkpoint kept), not its last epoch. A sweep's parent run is never picked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.utils.paths import is_minimized
from src.utils.tracking.registry import CHAMPION_ALIAS, MODEL_ARTIFACT, best_metric_value
from src.utils.tracking.store.mlflow_store import configure_mlflow

if TYPE_CHECKING:
    import torch
    from mlflow import MlflowClient
    from mlflow.entities import Experiment, Run

CHECKPOINT_ARTIFACT = "checkpoints/best.ckpt"
BEST = "best"
_LISTED = 8  # how many runs an error message lists
_NEWEST_FIRST = ["attributes.start_time DESC"]


class RunNotFoundError(LookupError):
    """No such experiment or run; the message lists what exists."""


def client() -> MlflowClient:
    from mlflow import MlflowClient

    # A progress bar per downloaded file only clutters notebook output for local files.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return MlflowClient(configure_mlflow())


def get_experiment(experiment_name: str, mlflow_client: MlflowClient | None = None) -> Experiment:
    mlflow_client = mlflow_client or client()
    experiment = mlflow_client.get_experiment_by_name(experiment_name)
    if experiment is None or experiment.lifecycle_stage != "active":
        names = sorted(e.name for e in mlflow_client.search_experiments())
        raise RunNotFoundError(
            f"No MLflow experiment named {experiment_name!r} in {mlflow_client.tracking_uri}. "
            f"Experiments there: {', '.join(names) or 'none (run training first)'}"
        )
    return experiment


def is_trial_run(run: Run) -> bool:
    """A training run (single or sweep trial), not a sweep's parent run."""
    return run.data.tags.get("run_kind") != "sweep" and "optimized_metric" in run.data.params


def ranked_runs(
    experiment_name: str, metric: str | None = None, mlflow_client: MlflowClient | None = None
) -> tuple[str, list[tuple[float, Run]]]:
    """`metric` and the FINISHED trial runs that logged it, best first, with their best value.

    `metric=None` takes the optimized metric of the newest trial run, and ranks only runs that
    optimised the same metric (a val/loss sweep and a val/acc sweep do not compare).
    """
    mlflow_client = mlflow_client or client()
    finished = mlflow_client.search_runs(
        [get_experiment(experiment_name, mlflow_client).experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=_NEWEST_FIRST,
        max_results=5000,
    )
    runs = [run for run in finished if is_trial_run(run)]
    if not runs:
        raise RunNotFoundError(
            f"Experiment {experiment_name!r} has no finished training run yet: "
            "run training (or a sweep) first"
        )
    metric = metric or runs[0].data.params["optimized_metric"]
    candidates = [r for r in runs if r.data.params["optimized_metric"] == metric]
    scored = [(best_metric_value(r, metric, mlflow_client), r) for r in candidates]
    scored = [(value, r) for value, r in scored if value == value]  # drop NaN: never logged
    # A stable sort: of equal values the newest run comes first.
    return metric, sorted(scored, key=lambda pair: pair[0], reverse=not is_minimized(metric))


def best_run(
    experiment_name: str, metric: str | None = None, mlflow_client: MlflowClient | None = None
) -> Run:
    """The FINISHED trial run with the best value of `metric` (see ranked_runs)."""
    metric, ranked = ranked_runs(experiment_name, metric, mlflow_client)
    if not ranked:
        raise RunNotFoundError(f"No finished run of {experiment_name!r} logged {metric!r}")
    return ranked[0][1]


def resolve_run(
    experiment_name: str, run_id: str | None = None, mlflow_client: MlflowClient | None = None
) -> Run:
    """`run_id`: None or 'best' (best trial), 'champion' (registry alias), a run id or name."""
    mlflow_client = mlflow_client or client()
    if run_id is None or run_id == BEST:
        return best_run(experiment_name, mlflow_client=mlflow_client)
    if run_id == CHAMPION_ALIAS:
        return mlflow_client.get_run(champion_version(experiment_name, mlflow_client).run_id)
    ids = [get_experiment(experiment_name, mlflow_client).experiment_id]
    quoted = _quote(run_id)
    runs = mlflow_client.search_runs(ids, f"attributes.run_id = '{quoted}'") or (
        mlflow_client.search_runs(ids, f"attributes.run_name = '{quoted}'", order_by=_NEWEST_FIRST)
    )
    if len(runs) == 1:
        return runs[0]
    recent = runs or mlflow_client.search_runs(ids, order_by=_NEWEST_FIRST, max_results=_LISTED)
    listing = "\n".join(f"  {r.info.run_id}  {r.info.run_name}" for r in recent[:_LISTED])
    problem = "matches several runs" if runs else "is no run id or run name"
    raise RunNotFoundError(
        f"{run_id!r} {problem} in experiment {experiment_name!r}. "
        f"Recent runs (id, name):\n{listing or '  none'}"
    )


def champion_version(experiment_name: str, mlflow_client: MlflowClient | None = None) -> Any:
    """The registered model version that carries the alias `champion`."""
    from mlflow.exceptions import MlflowException

    mlflow_client = mlflow_client or client()
    try:
        return mlflow_client.get_model_version_by_alias(experiment_name, CHAMPION_ALIAS)
    except MlflowException as error:
        models = sorted(m.name for m in mlflow_client.search_registered_models())
        raise RunNotFoundError(
            f"No registered model {experiment_name!r} with alias {CHAMPION_ALIAS!r} "
            f"(a finished sweep sets it). Registered models: {', '.join(models) or 'none'}"
        ) from error


def model_uri(experiment_name: str, run_id: str | None = None) -> str:
    """The URI `mlflow models serve -m` and `mlflow.pytorch.load_model` take."""
    if run_id == CHAMPION_ALIAS:
        champion_version(experiment_name)  # fails clearly when there is none
        return f"models:/{experiment_name}@{CHAMPION_ALIAS}"
    return f"runs:/{resolve_run(experiment_name, run_id).info.run_id}/{MODEL_ARTIFACT}"


def load_model(experiment_name: str, run_id: str | None = None) -> torch.nn.Module:
    """The run's logged MLflow pytorch model on the CPU, in eval mode.

    Input: float pixels in [0, 1], shape N×1×28×28. Output: N×10 logits (argmax = class).
    """
    import mlflow.pytorch

    return mlflow.pytorch.load_model(model_uri(experiment_name, run_id), map_location="cpu").eval()


def checkpoint_file(run: Run) -> Path:
    """A local copy of the run's Lightning checkpoint (for `load_from_checkpoint`)."""
    import mlflow.artifacts

    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path=CHECKPOINT_ARTIFACT
    )
    return Path(local)


def _quote(value: str) -> str:
    """Escape a value for an MLflow search filter string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")
