"""Work left RUNNING by a process killed hard (SIGKILL, OOM, power loss).

Trials and runs record their owner's host, pid and start time; one whose owner on this host
is gone can never finish. Every run and sweep start marks such MLflow runs KILLED and says
how to continue them; sweeps put such trials back in the queue. Other hosts' work (a
shared study) is left alone: their processes cannot be seen from here.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.utils.interrupts import interrupt_safe
from src.utils.tracking.runs.tags import HOST_TAG, PID_TAG, STARTED_TAG
from src.utils.tracking.store.mlflow_store import configure_mlflow

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)
KILLED_REASON = "its process is gone (killed)"


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
    from optuna.trial import TrialState

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
        client.set_tag(run.info.run_id, "killed_reason", KILLED_REASON)
        client.set_terminated(run.info.run_id, "KILLED")
        _say_how_to_continue(run.info.run_name, run.info.run_id, run.data.tags)
    return len(dead)


def kill_dead_runs_in_file(db: Path) -> int:
    """The same for every experiment of a local store, at the UI's start: read with sqlite3,
    since importing MLflow's client would add seconds to the UI's first page."""
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=5)) as store, store:
            running = store.execute("SELECT run_uuid, name FROM runs WHERE status = 'RUNNING'")
            dead = []
            for run_id, name in running.fetchall():
                query = "SELECT key, value FROM tags WHERE run_uuid = ?"
                tags = dict(store.execute(query, (run_id,)).fetchall())
                if owner_is_dead(tags):
                    dead.append((run_id, name, tags))
            for run_id, _, _ in dead:
                store.execute(
                    "UPDATE runs SET status = 'KILLED', end_time = ? WHERE run_uuid = ?",
                    (int(time.time() * 1000), run_id),
                )
                store.execute(
                    "INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                    ("killed_reason", KILLED_REASON, run_id),
                )
    except sqlite3.Error:
        return 0  # a store this user may only read, or one MLflow has yet to create
    for run_id, name, tags in dead:
        _say_how_to_continue(name, run_id, tags)
    return len(dead)


def _say_how_to_continue(run_name: str, run_id: str, tags: dict[str, str]) -> None:
    how = "run the same sweep command again"
    if "trial_number" not in tags and "run_kind" not in tags:
        how = f"python {tags.get('mlflow.source.name')} resume={run_id}"
    log.warning(
        f"Run {run_name} ({run_id}) was left RUNNING by a killed process: marked KILLED. "
        f"To continue it: {how}"
    )
