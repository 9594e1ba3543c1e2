"""The tags every run carries: code version, source, user, owner process, sweep links."""

import getpass
import os
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from src.utils.paths import PROJECT_ROOT
from src.utils.tracking.store.redaction import redact_override

# Which process owns a run or trial (see stale_runs): a RUNNING one whose owner is gone
# can never finish. The start time tells a reused process id from the owner.
HOST_TAG, PID_TAG, STARTED_TAG = "process.host", "process.pid", "process.started"


def owner_tags() -> dict[str, str]:
    import psutil

    started = f"{psutil.Process().create_time():.0f}"
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), STARTED_TAG: started}


def git_tags(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """MLflow's standard git tags: commit and a dirty flag (empty outside a repository)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.decode().strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git_dirty": "unknown (not a git repository)"}
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"mlflow.source.git.commit": commit, "git_dirty": str(bool(dirty)).lower()}


def run_tags(
    *,
    entry_point: str,
    overrides: list[str],
    model_kind: str,
    study_name: str | None = None,
    trial_number: int | None = None,
    parent_run_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The tags every training run carries (seed 000's list: code, source, model, sweep)."""
    tags = {
        "mlflow.source.name": entry_point,
        "mlflow.source.type": "LOCAL",
        "mlflow.user": _user(),
        "hydra.overrides": " ".join(redact_override(o) for o in overrides),
        "model_kind": model_kind,
        **git_tags(),
        **owner_tags(),
    }
    links = {"study_name": study_name, "trial_number": trial_number}
    links["mlflow.parentRunId"] = parent_run_id
    tags.update({k: str(v) for k, v in links.items() if v is not None})
    tags.update({str(k): str(v) for k, v in (extra or {}).items()})
    return tags


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
