"""`resume=<run id>|last` and re-launched sweep trials: the killed run to continue, from its
logs/lightning/<experiment>/<run id>/last.ckpt (training/resume.py). `resume=` composes the
run's overrides (kept there), then this command's (`resume=last trainer.max_epochs=10` trains
longer), refusing a changed `model.*`; a sweep trial finds its run by study and trial number.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from src.utils.paths import LIGHTNING_LOGS_DIR
from src.utils.tracking.store import stale_runs
from src.utils.tracking.store.mlflow_store import configure_mlflow

# Set by training/distributed.py for the DDP ranks that rank 0 starts: the run it chose.
RANK_ZERO_RUN_ENV = "TRAINING_RUN_ID"


class ResumeError(ValueError):
    """`resume=` names a run that cannot be continued; the message says why and what to do."""


class DiskFull(OSError):
    """A run stopped by a full file system; the message names it and how to go on."""


# A full disk as errors show it: ENOSPC, SQLite's message, and torch.save's (measured on a
# full tmpfs: "unexpected pos ..." after "basic_ios::clear: iostream error").
_FULL_DISK = ("No space left", "disk is full", "iostream error", "unexpected pos")


def disk_full(error: BaseException | None, folder: Path, how: str) -> DiskFull | None:
    """`error` as one DiskFull message when it, or what caused it, says the disk is full."""
    while error is not None:
        if getattr(error, "errno", None) == 28 or any(m in str(error) for m in _FULL_DISK):
            where = Path(getattr(error, "filename", None) or folder).absolute()
            while not os.path.ismount(where):
                where = where.parent
            return DiskFull(f"no space left on the file system at {where}: free some, then {how}")
        error = error.__cause__ or error.__context__
    return None


@dataclass
class ResumePoint:
    run_id: str
    checkpoint: Path | None  # its last.ckpt; None: killed before its first epoch ended
    overrides: list[str] | None = None  # resume=...: the run's, then this command's


def resume_point(cfg: DictConfig) -> tuple[DictConfig, ResumePoint | None]:
    """The config and run to continue for `resume=...` or a sweep's re-run trial, else (cfg,
    None). Dead runs of the experiment are marked KILLED after the checks (a bad `resume=`
    writes nothing)."""
    trial = cfg.sweep.trial_number is not None
    chosen = os.environ.get(RANK_ZERO_RUN_ENV)  # None but in a DDP rank > 0
    if cfg.get("resume") is None and not trial:
        if chosen is None:
            stale_runs.kill_dead_runs(cfg)
        return cfg, None
    from mlflow import MlflowClient

    client = MlflowClient(configure_mlflow(cfg.mlflow.tracking_uri))
    experiment = client.get_experiment_by_name(cfg.experiment_name)
    if trial:  # the sweeper marked dead runs KILLED; its own overrides are the trial's
        found = experiment and client.search_runs(
            [experiment.experiment_id],
            f"tags.study_name = '{cfg.sweep.study_name}' and tags.trial_number = "
            f"'{cfg.sweep.trial_number}' and attributes.status != 'FINISHED'",
        )
        if not found:
            return cfg, None
        run = found[0]
    elif chosen is not None:  # DDP: continue the run rank 0 chose and reopened
        run = client.get_run(chosen)
    else:
        run = _named_run(client, experiment, str(cfg.resume), cfg.experiment_name)
    path = LIGHTNING_LOGS_DIR / cfg.experiment_name / run.info.run_id / "last.ckpt"
    point = ResumePoint(run.info.run_id, path if path.exists() else None)
    if not trial:
        if point.checkpoint is None:
            raise ResumeError(
                f"resume={cfg.resume}: run {run.info.run_id} has no {path} (it stopped before "
                "its first epoch ended, or the file was deleted): start a new run instead"
            )
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["resume"]
        cfg, point.overrides = _with_run_overrides(saved["overrides"], run.info.run_id)
        was, now = saved["model"], OmegaConf.to_container(cfg.model)
        changed = [f"model.{k}: {was.get(k)} -> {v}" for k, v in now.items() if was.get(k) != v]
        if changed:
            raise ResumeError(
                f"resume={run.info.run_id}: the model no longer matches its checkpoint "
                f"({'; '.join(changed)}): undo the change (config file or override) or "
                "start a new run"
            )
        if chosen is None:
            stale_runs.kill_dead_runs(cfg)
    return cfg, point


def _named_run(client: Any, experiment: Any, wanted: str, name: str) -> Any:
    """The run `resume=<wanted>` names; ResumeError (exit 2) when it cannot be continued."""
    from mlflow.exceptions import MlflowException

    def unfinished(run: Any) -> bool:
        return run.info.status != "RUNNING" or stale_runs.owner_is_dead(run.data.tags)

    if wanted == "last":
        runs = experiment and client.search_runs(
            [experiment.experiment_id],
            "attributes.status != 'FINISHED'",
            max_results=200,
            order_by=["attributes.start_time DESC"],
        )
        for run in runs or []:  # not a sweep's runs: the sweep command continues them
            if not {"trial_number", "run_kind"} & run.data.tags.keys() and unfinished(run):
                return run
        raise ResumeError(f"resume=last: experiment {name} has no unfinished run to continue")
    try:
        run = client.get_run(wanted)
    except MlflowException:
        missing = f"resume={wanted}: no run with this id in {client.tracking_uri}"
        raise ResumeError(missing) from None
    tags, problem = run.data.tags, None
    if experiment is None or run.info.experiment_id != experiment.experiment_id:
        other = client.get_experiment(run.info.experiment_id).name
        problem = f"belongs to experiment {other}, not {name}: use that experiment's train.py"
    elif "trial_number" in tags:
        problem = f"is a trial of sweep {tags.get('study_name')}: run that sweep again"
    elif run.info.status == "FINISHED":
        problem = "has FINISHED, there is nothing to continue (start a new run instead)"
    elif not unfinished(run):
        problem = f"is still running (process {tags.get('process.pid')})"
    if problem:
        raise ResumeError(f"resume={wanted}: run {run.info.run_name} {problem}")
    return run


def job_overrides() -> list[str]:
    """The overrides Hydra applied to this job (empty outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _with_run_overrides(saved: list[str], run_id: str) -> tuple[DictConfig, list[str]]:
    """The config composed from the run's overrides, then this command's (resume aside)."""
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig

    given = [o for o in job_overrides() if not o.startswith("resume=")]
    keys = {o.split("=", 1)[0] for o in given}
    kept = [o for o in saved if o.split("=", 1)[0] not in keys]
    cfg = compose(HydraConfig.get().job.config_name, overrides=[*kept, *given])
    with open_dict(cfg):
        cfg.resume = run_id
    return cfg, [*kept, *given]
