"""Scaling out on one machine: Hydra launcher configs (submitit, joblib) and multi-device
Lightning settings, run for real with the project's sweep."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import SMALL_RUN, run, study_name_of, sweep_runs

pytestmark = pytest.mark.slow

LAUNCHERS = Path("config/model/model01/hydra/launcher")


def sweep(project: Path, space: str, *overrides: str) -> subprocess.CompletedProcess[str]:
    command = ["poetry", "run", "python", "src/model/model01/train.py", "-m", space]
    return run([*command, *overrides, *SMALL_RUN], cwd=project)


def optuna_trials(project: Path, study_name: str):
    import optuna

    storage = f"sqlite:///{project / 'logs' / 'optuna.db'}"
    return optuna.load_study(study_name=study_name, storage=storage).trials


def assert_every_trial_once(project: Path, study_name: str, n_trials: int) -> None:
    """n COMPLETE Optuna trials, each exactly one FINISHED MLflow run under the parent."""
    import optuna

    trials = optuna_trials(project, study_name)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * n_trials
    _, _, parents, runs = sweep_runs(project, study_name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    numbers = sorted(int(r.data.tags["trial_number"]) for r in runs)
    assert numbers == list(range(n_trials)), "a trial is missing or logged twice in MLflow"
    by_number = {int(r.data.tags["trial_number"]): r for r in runs}
    for trial in trials:
        logged = by_number[trial.number]
        assert logged.info.status == "FINISHED"
        assert logged.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert logged.data.metrics["val/acc"] == pytest.approx(trial.value)


def test_launcher_configs_are_complete_and_lightning_multi_device_composes(installed_project):
    project = installed_project
    for name, module in (
        ("submitit_slurm", "hydra_plugins.hydra_submitit_launcher.config"),
        ("submitit_local", "hydra_plugins.hydra_submitit_launcher.config"),
        ("joblib", "hydra_plugins.hydra_joblib_launcher.config"),
    ):
        config = yaml.safe_load((project / LAUNCHERS / f"{name}.yaml").read_text())
        assert config["_target_"].startswith("hydra_plugins.")
        try:
            plugin = __import__(module, fromlist=["*"])
        except ImportError:
            continue  # the plugin's own schema is checked where it is installed
        schema = {
            "submitit_slurm": "SlurmQueueConf",
            "submitit_local": "LocalQueueConf",
            "joblib": "JobLibLauncherConf",
        }[name]
        from omegaconf import OmegaConf

        expected = OmegaConf.structured(getattr(plugin, schema))
        # Our file replaces the plugin's config of the same name: it must keep every key.
        assert set(config) == set(expected), f"{name}.yaml lacks or adds keys"
        assert config["_target_"] == expected["_target_"]

    # Compose (never run) a Slurm sweep of DDP trials on 2 nodes x 2 devices and build the
    # Trainer: Slurm must start one task per device on every node, as Lightning expects;
    # the launcher's node count follows trainer.num_nodes.
    code = """
import json
import lightning as L
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from src.utils.hydra_resolvers import register_resolvers
from src.utils.paths import CONFIG_DIR
from src.utils.sweep.sweeper import register_sweeper

register_resolvers()
register_sweeper()
overrides = [
    "hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu",
    "hydra.launcher.gpus_per_node=2",
    "hydra.launcher.tasks_per_node=2", "hydra.launcher.timeout_min=120",
    "hydra.launcher.mem_gb=32",
    "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
    "trainer.num_nodes=2",
]
with initialize_config_dir(str(CONFIG_DIR / "model/model01"), version_base=None):
    cfg = compose("config", overrides=overrides, return_hydra_config=True)
launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)  # as Hydra instantiates it
trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
built = L.Trainer(**trainer, logger=False, enable_checkpointing=False)
print(json.dumps({
    "launcher": launcher, "trainer": trainer,
    "strategy": type(built.strategy).__name__, "devices": built.num_devices,
    "nodes": built.num_nodes,
}))
"""
    result = run([sys.executable, "-c", code], cwd=project)
    import json

    composed = json.loads(result.stdout.strip().splitlines()[-1])
    launcher = composed["launcher"]
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert launcher["partition"] == "gpu" and launcher["gpus_per_node"] == 2
    assert launcher["tasks_per_node"] == 2 and launcher["timeout_min"] == 120
    assert composed["trainer"]["strategy"] == "ddp" and composed["trainer"]["devices"] == 2
    assert composed["strategy"] == "DDPStrategy" and composed["devices"] == 2
    assert launcher["nodes"] == composed["nodes"] == composed["trainer"]["num_nodes"] == 2
    assert launcher["tasks_per_node"] == composed["devices"] == launcher["gpus_per_node"]


def test_submitit_local_runs_a_two_trial_sweep(installed_project):
    pytest.importorskip(
        "hydra_plugins.hydra_submitit_launcher",
        reason="hydra-submitit-launcher is not installed (a dependency of the project)",
    )
    project = installed_project
    result = sweep(
        project,
        "learning_rate=interval(0.0010,0.0013)",
        "hydra/launcher=submitit_local",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.launcher.timeout_min=10",
    )
    console = result.stdout + result.stderr
    assert "Submitit 'local' sweep output dir" in console
    name = study_name_of(result)
    assert_every_trial_once(project, name, 2)
    sweep_dir = Path(re.search(r"sweep output dir : (\S+)", console).group(1))
    job_logs = list((sweep_dir / ".submitit").rglob("*_log.out"))
    assert len(job_logs) == 2, "submitit did not run each trial as its own job"


def test_joblib_runs_two_trials_in_parallel_into_one_sqlite_store(installed_project):
    project = installed_project
    # Fresh features: both trials need them at once; the file lock lets one build them.
    shutil.rmtree(project / "_data" / "feature" / "feature01", ignore_errors=True)
    start = time.monotonic()
    result = sweep(
        project,
        "learning_rate=interval(0.0010,0.0014)",
        "hydra/launcher=joblib",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
    )
    elapsed = time.monotonic() - start
    console = result.stdout + result.stderr
    assert "database is locked" not in console.lower()
    assert "Joblib.Parallel(n_jobs=2" in console, "the trials did not run in 2 processes"
    name = study_name_of(result)
    assert_every_trial_once(project, name, 2)
    assert console.count("building them in") == 1, "features were built more than once"
    *_, runs = sweep_runs(project, name)
    assert len({r.data.tags["data.feature_sha256"] for r in runs}) == 1
    pids = {r.data.tags["process.pid"] for r in runs}
    assert len(pids) == 2, "both trials ran in the same process"
    print(f"joblib: 2 parallel trials (with the feature build) in {elapsed:.1f} s")
