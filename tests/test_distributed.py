"""DDP on CPU (2 processes, gloo): one job is one MLflow run, a sweep of DDP trials is one
sweep, and every rank stops together on a diverged loss or a signal."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SMALL_RUN, project_env, run

pytestmark = pytest.mark.slow

# The README's DDP command; the tests add SMALL_RUN and an experiment of their own.
DDP_COMMAND = [
    "poetry",
    "run",
    "python",
    "src/model/model01/train.py",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.strategy=ddp",
]


def client(project: Path):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{project / 'logs' / 'mlruns' / 'mlflow.db'}")


def runs_of(project: Path, experiment_name: str) -> list:
    mlflow_client = client(project)
    experiment = mlflow_client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    return mlflow_client.search_runs([experiment.experiment_id], max_results=100)


def studies_of(project: Path, experiment_name: str) -> list:
    import optuna

    storage = f"sqlite:///{project / 'logs' / 'optuna.db'}"
    return [
        optuna.load_study(study_name=s.study_name, storage=storage)
        for s in optuna.get_all_study_summaries(storage)
        if s.study_name.startswith(f"{experiment_name}-")
    ]


def processes_with(*words: str) -> list[int]:
    """Process ids whose command line holds every word (ranks left behind, say)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if all(word in command for word in words):
            found.append(int(entry.name))
    return found


def test_a_ddp_run_is_one_mlflow_run_with_its_artifacts(installed_project):
    project = installed_project
    name = "ddp_single"
    start = time.monotonic()
    result = run([*DDP_COMMAND, f"experiment_name={name}", *SMALL_RUN], cwd=project)
    elapsed = time.monotonic() - start
    console = result.stdout + result.stderr
    assert "MEMBER: 2/2" in console, "training did not start a second process"

    runs = runs_of(project, name)
    assert len(runs) == 1, f"{len(runs)} MLflow runs for one DDP job"
    logged = runs[0]
    assert logged.info.status == "FINISHED"
    assert logged.data.params["trainer.devices"] == "2"
    assert {"train/loss", "val/loss", "val/acc", "test/acc"} <= set(logged.data.metrics)
    mlflow_client = client(project)
    artifacts = {a.path for a in mlflow_client.list_artifacts(logged.info.run_id)}
    assert {"checkpoints", "config", "environment", "plots"} <= artifacts
    plots = {a.path for a in mlflow_client.list_artifacts(logged.info.run_id, "plots")}
    assert plots == {"plots/confusion_matrix.png"}

    import mlflow.pytorch

    mlflow.set_tracking_uri(f"sqlite:///{project / 'logs' / 'mlruns' / 'mlflow.db'}")
    model = mlflow.pytorch.load_model(f"runs:/{logged.info.run_id}/model")
    assert type(model).__name__ == "DigitCNN"

    # One Hydra output folder and one set of log lines: the second rank writes neither.
    assert len(list((project / "outputs" / name).iterdir())) == 1
    log_text = "".join(
        p.read_text() for p in (project / "logs" / "logging_" / "model" / name).glob("*.log")
    )
    assert log_text.count("feature01:") == 1, log_text
    print(f"DDP run on 2 CPU processes: {elapsed:.1f} s")


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_sweep_of_ddp_trials_is_one_sweep(installed_project, launcher):
    project = installed_project
    name = f"ddp_sweep_{launcher}"
    start = time.monotonic()
    command = [
        *DDP_COMMAND,
        "-m",
        "learning_rate=interval(0.001,0.002)",
        f"hydra/launcher={launcher}",  # joblib: each trial's rank 0 is a worker process
        f"experiment_name={name}",
    ]
    run([*command, "hydra.sweeper.n_trials=2", *SMALL_RUN], cwd=project)
    elapsed = time.monotonic() - start

    runs = runs_of(project, name)
    parents = [r for r in runs if r.data.tags.get("run_kind") == "sweep"]
    trials = [r for r in runs if "trial_number" in r.data.tags]
    assert len(parents) == 1, f"{len(parents)} sweep parent runs: a rank started its own sweep"
    assert len(runs) == 3
    assert sorted(int(r.data.tags["trial_number"]) for r in trials) == [0, 1]
    for trial in trials:
        assert trial.info.status == "FINISHED"
        assert trial.data.tags["mlflow.parentRunId"] == parents[0].info.run_id

    (study,) = studies_of(project, name)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    by_number = {int(r.data.tags["trial_number"]): r for r in trials}
    for trial in study.trials:
        assert by_number[trial.number].data.metrics["val/acc"] == pytest.approx(trial.value)
    assert len(list((project / "multirun" / name).iterdir())) == 1
    champion = client(project).get_model_version_by_alias(name, "champion")
    assert champion.run_id in {r.info.run_id for r in trials}
    print(f"DDP sweep ({launcher}), 2 trials on 2 CPU processes each: {elapsed:.1f} s")
    if launcher != "basic":
        return

    # The same command with a larger n_trials resumes the study: one more trial, trained once.
    again = run([*command, "hydra.sweeper.n_trials=3", *SMALL_RUN], cwd=project)
    assert "Resuming study" in again.stdout + again.stderr
    (study,) = studies_of(project, name)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    trials = [r for r in runs_of(project, name) if "trial_number" in r.data.tags]
    assert sorted(int(r.data.tags["trial_number"]) for r in trials) == [0, 1, 2]


def test_a_diverged_ddp_trial_fails_and_the_next_trial_trains(installed_project):
    project = installed_project
    name = "ddp_nan"
    result = run(
        [
            *DDP_COMMAND,
            "-m",
            "hydra/sweeper/sampler=grid",
            "learning_rate=choice(1e30,0.0013)",
            "seed=45",  # the grid sampler's seed too: the diverging trial comes first
            f"experiment_name={name}",
            *SMALL_RUN,
        ],
        cwd=project,
        timeout=300,
    )
    assert "NonFiniteLossError: train/loss became nan" in result.stdout + result.stderr
    (study,) = studies_of(project, name)
    states = [(t.params["learning_rate"], t.state.name) for t in study.trials]
    assert states == [(1e30, "FAIL"), (0.0013, "COMPLETE")]
    trials = [r for r in runs_of(project, name) if "trial_number" in r.data.tags]
    by_rate = {float(r.data.params["learning_rate"]): r for r in trials}
    assert by_rate[1e30].info.status == "FAILED"
    assert by_rate[0.0013].info.status == "FINISHED"


@pytest.mark.parametrize(
    ("sig", "to_group"),
    [(signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["sigterm-to-rank-0", "ctrl-c-to-every-rank"],
)
def test_a_signal_stops_every_rank_and_ends_the_run_killed(
    installed_project, tmp_path, sig, to_group
):
    project = installed_project
    name = f"ddp_{signal.Signals(sig).name.lower()}"
    log = tmp_path / "train.log"
    process = subprocess.Popen(
        [
            *DDP_COMMAND[2:],
            f"experiment_name={name}",
            "trainer.max_epochs=50",
            "trainer.limit_train_batches=4",
            "trainer.limit_val_batches=1",
            "trainer.log_every_n_steps=1",
            "callbacks.early_stopping=null",
        ],
        cwd=project,
        # faulthandler: SIGABRT makes a stuck process print every thread's stack (below)
        env=project_env(PYTHONFAULTHANDLER="1"),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal gives it
    )
    try:
        deadline = time.monotonic() + 180
        while not any("train/loss" in r.data.metrics for r in runs_of(project, name)):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "training never logged a step"
            time.sleep(0.5)
        assert processes_with(f"experiment_name={name}", "train_ddp_process_1")
        if to_group:
            os.killpg(process.pid, sig)  # Ctrl-C in a terminal reaches every rank
        else:
            process.send_signal(sig)  # `kill <pid>`, a scheduler: rank 0 only
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stuck = [process.pid, *processes_with(f"experiment_name={name}", "train_ddp")]
            for pid in stuck:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGABRT)
            time.sleep(2)
            pytest.fail(f"the ranks did not stop within 60 s:\n{log.read_text()[-12000:]}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode != 0
    (logged,) = runs_of(project, name)
    assert logged.info.status == "KILLED"
    deadline = time.monotonic() + 30
    while processes_with(f"experiment_name={name}", "train_ddp_process_1"):
        assert time.monotonic() < deadline, "the second rank outlived the run"
        time.sleep(0.5)


def test_the_readme_gpu_command_trains_or_says_there_is_no_gpu(installed_project):
    command = [
        "poetry",
        "run",
        "python",
        "src/model/model01/train.py",
        "trainer.accelerator=gpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.precision=bf16-mixed",
        "experiment_name=ddp_gpu",
        *SMALL_RUN,
    ]
    result = run(command, cwd=installed_project, check=False)
    import torch

    if torch.cuda.device_count() >= 2:
        assert result.returncode == 0, result.stderr[-3000:]
    else:
        assert result.returncode == 2
        assert "No supported gpu backend found" in result.stderr or "devices" in result.stderr
