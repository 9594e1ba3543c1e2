"""Work left RUNNING by a process killed hard (SIGKILL, OOM, power loss).

Trials and runs record their owner's host, pid and start time; one whose owner on this host
is gone can never finish. Every run and sweep start marks such MLflow runs KILLED and says
how to continue them; sweeps put such trials back in the queue. Other hosts' work (a
shared study) is left alone: their processes cannot be seen from here.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import optuna
from optuna.trial import TrialState

from src.utils.interrupts import interrupt_safe
from src.utils.tracking.runs.tags import HOST_TAG, PID_TAG, STARTED_TAG
from src.utils.tracking.store.mlflow_store import configure_mlflow

log = logging.getLogger(__name__)


def owner_is_dead(tags: dict[str, str]) -> bool:
    """True when the owner ran on this host and is gone, or its pid is another process's."""
    import psutil

    if tags.get(HOST_TAG) != socket.gethostname() or tags.get(PID_TAG) is None:
        return False
    try:
        now = psutil.Process(int(tags[PID_TAG])).create_time()
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, ValueError):
        return False
    started = tags.get(STARTED_TAG)
    return started is not None and abs(now - float(started)) > 1.5


def requeue_dead_trials(study: optuna.Study) -> list[int]:
    """Put RUNNING trials whose sweep process died back in the study's queue (WAITING):
    the sweep's next `ask` takes them, params, intermediate values and all, and the trial
    continues its MLflow run from its last checkpoint. Taking a WAITING trial is atomic,
    so of several workers on one study one continues it."""
    numbers = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if owner_is_dead(trial.user_attrs):
            study._storage.set_trial_state_values(trial._trial_id, TrialState.WAITING)
            numbers.append(trial.number)
    return numbers


def kill_dead_runs(cfg: Any) -> int:
    """Mark the experiment's RUNNING MLflow runs whose process died as KILLED."""
    from mlflow import MlflowClient

    client = interrupt_safe(MlflowClient(configure_mlflow(cfg.mlflow.tracking_uri)))
    experiment = client.get_experiment_by_name(cfg.experiment_name)
    if experiment is None:
        return 0
    running = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
    dead = [run for run in running if owner_is_dead(run.data.tags)]
    for run in dead:
        client.set_tag(run.info.run_id, "killed_reason", "its process is gone (killed)")
        client.set_terminated(run.info.run_id, "KILLED")
        how = "run the same sweep command again"
        if "trial_number" not in run.data.tags and "run_kind" not in run.data.tags:
            how = f"python {run.data.tags.get('mlflow.source.name')} resume={run.info.run_id}"
        log.warning(
            f"Run {run.info.run_name} ({run.info.run_id}) was left RUNNING by a killed "
            f"process: marked KILLED. To continue it: {how}"
        )
    return len(dead)
