"""Find work left RUNNING by a sweep that was killed hard (SIGKILL, power loss).

Every trial and MLflow run records the host and process id that owns it. Something still
RUNNING whose owner is on this host but no longer alive can never finish: its Optuna trial
is marked FAILED and its MLflow run KILLED, so resumed sweeps and the UI tell the truth.
Work owned by other hosts (a shared study) is left alone: we cannot see their processes.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import optuna

from src.utils.interrupts import interrupt_safe
from src.utils.tracking.runs.tags import HOST_TAG, PID_TAG
from src.utils.tracking.store.mlflow_store import configure_mlflow

log = logging.getLogger(__name__)


def is_dead_here(host: str | None, pid: str | int | None) -> bool:
    """True when `pid` ran on this host and no such process exists any more."""
    if host != socket.gethostname() or pid is None:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def fail_dead_trials(study: optuna.Study) -> int:
    """Mark RUNNING trials whose sweep process died as FAILED; return how many."""
    count = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if is_dead_here(trial.user_attrs.get(HOST_TAG), trial.user_attrs.get(PID_TAG)):
            study._storage.set_trial_user_attr(trial._trial_id, "error", "its sweep was killed")
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            count += 1
    return count


def kill_dead_runs(cfg: Any) -> int:
    """Mark the experiment's RUNNING MLflow runs whose process died as KILLED."""
    from mlflow import MlflowClient

    client = interrupt_safe(MlflowClient(configure_mlflow(cfg.mlflow.tracking_uri)))
    experiment = client.get_experiment_by_name(cfg.experiment_name)
    if experiment is None:
        return 0
    running = client.search_runs(
        [experiment.experiment_id], "attributes.status = 'RUNNING'", max_results=1000
    )
    count = 0
    for run in running:
        if is_dead_here(run.data.tags.get(HOST_TAG), run.data.tags.get(PID_TAG)):
            client.set_tag(run.info.run_id, "killed_reason", "its process is gone (killed sweep)")
            client.set_terminated(run.info.run_id, "KILLED")
            count += 1
    if count:
        log.warning(f"Marked {count} MLflow run(s) left RUNNING by a killed process as KILLED")
    return count
