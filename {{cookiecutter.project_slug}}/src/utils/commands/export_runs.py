"""Copy an experiment's runs from this project's MLflow store to another one (a team server).

    poetry run python -m src.utils.commands.export_runs model01 --to http://mlflow.example.com:5000
    poetry run python -m src.utils.commands.export_runs model01 --to http://... --from sqlite:///other.db

Copies each run whole (times, status, tags, params, metric histories, dataset inputs,
artifacts, MLflow 3 logged models: `runs:/<new id>/model` loads there), sweep trials nested
under their copied parents. Copies are tagged `exported_from.run_id`, so exporting again copies
only new runs. The model registry (versions, `champion`) is not copied: register on the server.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from src.utils.tracking.store.mlflow_store import (
    TrackingServerUnreachable,
    check_server,
    default_tracking_uri,
)
from src.utils.tracking.store.redaction import redact_url_credentials

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

log = logging.getLogger("export_runs")

EXPORTED_FROM = "exported_from.run_id"
EXPORTED_FROM_STORE = "exported_from.store"
PARENT = "mlflow.parentRunId"
_BATCH = 1000  # MLflow accepts at most 1000 metrics per log_batch


class ExportError(RuntimeError):
    """Nothing to export, or the destination cannot take it; the message says which."""


def _client(uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    if uri.startswith(("http://", "https://")):
        check_server(uri)
    return MlflowClient(uri)


def _all_runs(client: MlflowClient, experiment_id: str, filter_string: str = "") -> list[Run]:
    from mlflow.entities import ViewType

    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _parents_first(runs: list[Run]) -> list[Run]:
    """Every run after its parent run (when the parent is among `runs`)."""
    by_id = {run.info.run_id: run for run in runs}
    ordered: list[Run] = []
    placed: set[str] = set()

    def place(run: Run, seen: frozenset[str] = frozenset()) -> None:
        run_id = run.info.run_id
        if run_id in placed:
            return
        parent = by_id.get(run.data.tags.get(PARENT, ""))
        if parent is not None and parent.info.run_id not in seen:
            place(parent, seen | {run_id})
        placed.add(run_id)
        ordered.append(run)

    for run in runs:
        place(run)
    return ordered


def _copy_artifacts(source: MlflowClient, target: MlflowClient, run: Run, new_id: str) -> None:
    if not source.list_artifacts(run.info.run_id):
        return
    with tempfile.TemporaryDirectory(prefix="export_runs_") as tmp:
        local = Path(source.download_artifacts(run.info.run_id, "", tmp))
        if any(p.is_file() for p in local.rglob("*")):
            target.log_artifacts(new_id, str(local))


def _copy_logged_models(
    source: MlflowClient, target: MlflowClient, run: Run, new_id: str, experiment_id: str
) -> None:
    """MLflow 3 keeps logged models (`log_model(name=...)`) outside the run's artifacts."""
    import mlflow.artifacts
    from mlflow.entities import LoggedModelStatus

    models = source.search_logged_models(
        [run.info.experiment_id], f"source_run_id = '{run.info.run_id}'"
    )
    for model in models:
        copy = target.create_logged_model(
            experiment_id,
            name=model.name,
            source_run_id=new_id,
            tags={**model.tags, "exported_from.model_id": model.model_id},
            params=model.params,
            model_type=model.model_type,
        )
        with tempfile.TemporaryDirectory(prefix="export_models_") as tmp:
            local = mlflow.artifacts.download_artifacts(
                model.artifact_location, dst_path=tmp, tracking_uri=source.tracking_uri
            )
            target.log_model_artifacts(copy.model_id, local)
        ready = model.status == LoggedModelStatus.READY
        target.finalize_logged_model(copy.model_id, "READY" if ready else "FAILED")


def copy_run(
    source: MlflowClient, target: MlflowClient, run: Run, experiment_id: str, new_parent: str | None
) -> str:
    """Copy one run into experiment `experiment_id` of `target`; return the new run id."""
    from mlflow.entities import Metric, Param

    tags = {k: v for k, v in run.data.tags.items() if k not in (PARENT, "mlflow.runName")}
    tags[EXPORTED_FROM] = run.info.run_id
    tags[EXPORTED_FROM_STORE] = redact_url_credentials(source.tracking_uri)
    if new_parent is not None:
        tags[PARENT] = new_parent
    new_id = target.create_run(
        experiment_id, start_time=run.info.start_time, tags=tags, run_name=run.info.run_name
    ).info.run_id
    params = [Param(k, v) for k, v in run.data.params.items()]
    for start in range(0, len(params), 100):
        target.log_batch(new_id, params=params[start : start + 100])
    metrics = [
        Metric(m.key, m.value, m.timestamp, m.step)
        for key in run.data.metrics
        for m in source.get_metric_history(run.info.run_id, key)
    ]
    for start in range(0, len(metrics), _BATCH):
        target.log_batch(new_id, metrics=metrics[start : start + _BATCH])
    if run.inputs and run.inputs.dataset_inputs:
        target.log_inputs(new_id, datasets=list(run.inputs.dataset_inputs))
    _copy_artifacts(source, target, run, new_id)
    _copy_logged_models(source, target, run, new_id, experiment_id)
    if run.info.status == "RUNNING":
        log.warning(f"Run {run.info.run_name} is still RUNNING in the source; copied as is")
    else:
        target.set_terminated(new_id, run.info.status, end_time=run.info.end_time)
    return new_id


def export_experiment(experiment_name: str, source_uri: str, target_uri: str) -> dict[str, str]:
    """Copy the experiment's runs not copied before; return {source run id: target run id}."""
    source = _client(source_uri)
    target = _client(target_uri)
    experiment = source.get_experiment_by_name(experiment_name)
    if experiment is None:
        names = sorted(e.name for e in source.search_experiments())
        raise ExportError(
            f"No experiment {experiment_name!r} in {redact_url_credentials(source_uri)}. "
            f"Experiments there: {', '.join(names) or 'none'}"
        )
    destination = target.get_experiment_by_name(experiment_name)
    if destination is None:
        # The server chooses the artifact location (its --artifacts-destination).
        experiment_id = target.create_experiment(experiment_name, tags=experiment.tags)
    else:
        if destination.lifecycle_stage == "deleted":
            target.restore_experiment(destination.experiment_id)
        experiment_id = destination.experiment_id

    copied = {
        run.data.tags[EXPORTED_FROM]: run.info.run_id
        for run in _all_runs(target, experiment_id, f"tags.`{EXPORTED_FROM}` != ''")
    }
    runs = [r for r in _all_runs(source, experiment.experiment_id) if r.info.run_id not in copied]
    new: dict[str, str] = {}
    for run in _parents_first(runs):
        parent = run.data.tags.get(PARENT)
        new_parent = (new | copied).get(parent) if parent else None
        if parent and new_parent is None:
            log.warning(f"Run {run.info.run_name}: its parent run {parent} is not in the source")
        new[run.info.run_id] = copy_run(source, target, run, experiment_id, new_parent)
        log.info(f"Copied {run.info.run_name} ({run.info.run_id} -> {new[run.info.run_id]})")
    return new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m src.utils.commands.export_runs",
        description="Copy an experiment's MLflow runs (params, metric history, tags, "
        "artifacts, models, parent links) to another tracking store, e.g. a team server.",
    )
    parser.add_argument("experiment", help="experiment name, e.g. model01")
    parser.add_argument("--to", required=True, help="destination, e.g. http://mlflow:5000")
    parser.add_argument(
        "--from", dest="source", help="source store (default: this project's logs/mlruns/mlflow.db)"
    )
    args = parser.parse_args(argv)
    # One line per copied run, not a progress bar per file and two links per run.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("alembic", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    source = args.source or default_tracking_uri()
    if source.rstrip("/") == args.to.rstrip("/"):
        parser.error("--to names the source store itself")
    try:
        new = export_experiment(args.experiment, source, args.to)
    except (ExportError, TrackingServerUnreachable) as error:
        print(f"export_runs: error: {error}", file=sys.stderr)
        return 1
    target = redact_url_credentials(args.to)
    if new:
        print(f"Copied {len(new)} run(s) of {args.experiment} to {target}")
    else:
        print(f"Nothing to copy: every run of {args.experiment} is already in {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
