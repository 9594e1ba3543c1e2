"""Register a sweep's best trial model and keep the `champion` alias on the best one so far.

Each sweep registers its best trial under the experiment's name (`model01`), once per run;
`champion` moves to it only when it beats the champion's objective in the study's direction,
so `models:/model01@champion` is the best model any sweep has made. Not atomic: of two sweeps
finishing at once the last writer wins; move the alias in the UI if that matters.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from src.utils.paths import is_minimized

if TYPE_CHECKING:
    import optuna
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"  # the name TrainingRun.log_pytorch_model logs the model under
CHAMPION_ALIAS = "champion"  # models:/<experiment>@champion: the best model any sweep made
# Model-version tags that make versions comparable without reading their runs again.
METRIC_TAG = "optimized_metric"
VALUE_TAG = "optimized_value"


def best_metric_value(run: Run, metric: str, mlflow_client: MlflowClient) -> float:
    """The run's best epoch value of `metric` (max, or min for losses); NaN if never logged."""
    values = [m.value for m in mlflow_client.get_metric_history(run.info.run_id, metric)]
    if not values:
        return float("nan")
    return min(values) if is_minimized(metric) else max(values)


def trial_run(
    mlflow_client: MlflowClient, experiment_id: str, study_name: str, trial_number: int
) -> Run | None:
    """The FINISHED MLflow run of one Optuna trial, found by the tags TrainingRun sets."""
    query = (
        f"tags.study_name = '{study_name}' and tags.trial_number = '{trial_number}' "
        "and attributes.status = 'FINISHED'"
    )
    runs = mlflow_client.search_runs(
        [experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1
    )
    return runs[0] if runs else None


def beats(new: float, old: float, direction: str) -> bool:
    """Strictly better in the study's direction ('maximize' or 'minimize')."""
    return new < old if direction == "minimize" else new > old


def register_best_trial(
    mlflow_client: MlflowClient, experiment_name: str, study: optuna.Study, metric: str
) -> ModelVersion | None:
    """Register the study's best trial model; move `champion` to it if it is the best yet.

    Returns the version that carries the alias afterwards, or None when nothing could be
    registered (no finished trial, or the trial logged no model: mlflow.log_model=false).
    """
    import optuna

    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        log.info("Model registry: no completed trial, nothing to register")
        return None
    best = study.best_trial
    experiment = mlflow_client.get_experiment_by_name(experiment_name)
    run = experiment and trial_run(
        mlflow_client, experiment.experiment_id, study.study_name, best.number
    )
    if run is None or not _has_model(mlflow_client, run):
        log.info(f"Model registry: trial {best.number} has no finished run with a model")
        return None

    version = _version_of_run(mlflow_client, experiment_name, run.info.run_id)
    if version is None:
        version = _register(mlflow_client, experiment_name, run, metric, float(best.value))
    champion = _champion(mlflow_client, experiment_name)
    if champion is None or champion.version == version.version:
        mlflow_client.set_registered_model_alias(experiment_name, CHAMPION_ALIAS, version.version)
        log.info(f"Model registry: {experiment_name} v{version.version} is the {CHAMPION_ALIAS}")
        return version
    old_metric, old_value = _objective(mlflow_client, champion)
    if old_metric != metric:
        log.warning(
            f"Model registry: the {CHAMPION_ALIAS} (v{champion.version}) was chosen by "
            f"{old_metric}, this sweep by {metric}; not comparable, the alias stays. Move it in "
            f"the UI or with MlflowClient().set_registered_model_alias if you mean to."
        )
        return champion
    direction = study.direction.name.lower()
    if old_value != old_value or beats(float(best.value), old_value, direction):  # NaN: unknown
        mlflow_client.set_registered_model_alias(experiment_name, CHAMPION_ALIAS, version.version)
        log.info(
            f"Model registry: {experiment_name} v{version.version} ({metric}={best.value:.4g}) "
            f"beats v{champion.version} ({old_value:.4g}) and is the new {CHAMPION_ALIAS}"
        )
        return mlflow_client.get_model_version(experiment_name, version.version)
    log.info(
        f"Model registry: {experiment_name} v{champion.version} ({metric}={old_value:.4g}) stays "
        f"the {CHAMPION_ALIAS}; this sweep's best is {best.value:.4g}"
    )
    return champion


def _has_model(mlflow_client: MlflowClient, run: Run) -> bool:
    from mlflow.exceptions import MlflowException

    # MLflow 3 logs models as LoggedModel entities linked to the run.
    if getattr(run, "outputs", None) and run.outputs.model_outputs:
        return True
    try:
        return any(f.path == MODEL_ARTIFACT for f in mlflow_client.list_artifacts(run.info.run_id))
    except MlflowException:
        return False


def _version_of_run(mlflow_client: MlflowClient, name: str, run_id: str) -> ModelVersion | None:
    """The version already registered from this run (a resumed sweep with no new best)."""
    from mlflow.exceptions import MlflowException

    try:
        versions = mlflow_client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException:
        return None
    return max(versions, key=lambda v: int(v.version)) if versions else None


def _register(
    mlflow_client: MlflowClient, name: str, run: Run, metric: str, value: float
) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.create_registered_model(
            name, description=f"Best trial models of experiment {name}, one version per sweep."
        )
    except MlflowException:
        pass  # it exists already
    trial = {key: run.data.tags.get(key, "") for key in ("study_name", "trial_number")}
    # `runs:/` resolves to the run's logged model, so the version links back to its run.
    return mlflow_client.create_model_version(
        name,
        source=f"runs:/{run.info.run_id}/{MODEL_ARTIFACT}",
        run_id=run.info.run_id,
        tags={METRIC_TAG: metric, VALUE_TAG: repr(value), **trial},
        description=f"{run.info.run_name}: {metric} = {value:.4g}",
    )


def _champion(mlflow_client: MlflowClient, name: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None


def _objective(mlflow_client: MlflowClient, version: Any) -> tuple[str, float]:
    """The metric and value a version was chosen by; from its run for hand-made versions."""
    tags = version.tags or {}
    if METRIC_TAG in tags and VALUE_TAG in tags:
        return tags[METRIC_TAG], float(tags[VALUE_TAG])
    run = mlflow_client.get_run(version.run_id)
    metric = run.data.params.get("optimized_metric", "")
    return metric, best_metric_value(run, metric, mlflow_client) if metric else float("nan")
