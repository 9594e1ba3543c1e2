"""Issue 6 on real processes: failing trials, signals, killed sweeps, bad-input catalogue."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SMALL_RUN, project_env, run

pytestmark = pytest.mark.slow

TRAIN = [sys.executable, "src/model/model01/train.py"]
# Slow enough trials (20 short epochs, no early stop) to be caught in the middle.
SLOW_TRIALS = [
    "trainer.max_epochs=20",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "callbacks.early_stopping=null",
    "mlflow.log_model=false",
]


def client(project: Path):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{project / 'logs/mlruns/mlflow.db'}")


def all_study_runs(project: Path, study_name: str) -> list:
    mlflow_client = client(project)
    experiment = mlflow_client.get_experiment_by_name("model01")
    if experiment is None:
        return []
    return mlflow_client.search_runs(
        [experiment.experiment_id], f"tags.study_name = '{study_name}'", max_results=100
    )


def study_runs(project: Path, study_name: str) -> dict[str, object]:
    """The study's runs by name (a re-run sweep's parent shares its name: the newest wins)."""
    runs = sorted(all_study_runs(project, study_name), key=lambda r: r.info.start_time)
    return {r.info.run_name: r for r in runs}


def load_study(project: Path, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{project / 'logs/optuna.db'}")


def study_name_in(output: str) -> str:
    match = re.search(r"Study name: (\S+)", output)
    assert match, output[-3000:]
    return match.group(1)


def start_sweep(project: Path, log: Path, *args: str) -> subprocess.Popen:
    """A sweep in its own process group, as a terminal would run it (Ctrl-C hits the group)."""
    return subprocess.Popen(
        [*TRAIN, "-m", *args],
        cwd=project,
        env=project_env(),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def second_trial_running(project: Path, log: Path) -> bool:
    text = log.read_text()
    if "Launching" not in text:  # before, the sweep may still be creating the MLflow store
        return False
    runs = study_runs(project, study_name_in(text))
    first, second = runs.get("trial-000"), runs.get("trial-001")
    return bool(
        first and first.info.status == "FINISHED" and second and second.info.status == "RUNNING"
    )


def test_failed_trials_are_recorded_and_the_sweep_goes_on(installed_project):
    result = run(
        [
            *TRAIN,
            "-m",
            "hydra/sweeper/sampler=grid",
            "learning_rate=choice(0.0013,1e30)",
            *SMALL_RUN,
        ],
        cwd=installed_project,
    )
    output = result.stdout + result.stderr
    name = study_name_in(output)
    assert re.search(r"Trial [01] failed: NonFiniteLossError: train/loss became nan", output)
    assert "Traceback" not in output
    study = load_study(installed_project, name)
    states = {t.params["learning_rate"]: t.state.name for t in study.trials}
    assert states == {0.0013: "COMPLETE", 1e30: "FAIL"}
    failed = next(t for t in study.trials if t.state.name == "FAIL")
    assert failed.user_attrs["error"].startswith("NonFiniteLossError")
    runs = study_runs(installed_project, name)
    by_rate = {
        float(r.data.params["learning_rate"]): r for n, r in runs.items() if n.startswith("trial")
    }
    assert by_rate[0.0013].info.status == "FINISHED"
    assert by_rate[1e30].info.status == "FAILED"
    assert by_rate[1e30].data.tags["error"].startswith("NonFiniteLossError: train/loss became nan")
    error_txt = client(installed_project).download_artifacts(by_rate[1e30].info.run_id, "error.txt")
    assert "NonFiniteLossError" in Path(error_txt).read_text()
    assert runs[f"sweep-{name}"].info.status == "FINISHED"


def test_a_sweep_where_every_trial_fails_ends_with_a_summary(installed_project):
    result = run(
        [*TRAIN, "-m", "learning_rate=interval(1e29,1e30)", "hydra.sweeper.n_trials=2", *SMALL_RUN],
        cwd=installed_project,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Sweep stopped after 2 of 2 planned trial(s) failed" in output
    assert "max_failure_rate=0.5" in output
    assert "Traceback" not in output
    name = study_name_in(output)
    assert [t.state.name for t in load_study(installed_project, name).trials] == ["FAIL", "FAIL"]
    parent = study_runs(installed_project, name)[f"sweep-{name}"]
    assert parent.info.status == "FAILED" and "Sweep stopped" in parent.data.tags["error"]


def test_an_invalid_config_stops_a_sweep_at_the_first_trial(installed_project):
    result = run(
        # A search space of its own: the shared sweep fixture owns interval(0.001,0.002).
        [*TRAIN, "-m", "learning_rate=interval(0.0014,0.0016)", "batch_size=0", *SMALL_RUN],
        cwd=installed_project,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Sweep stopped after 1 of 10 planned trial(s) failed: the config is invalid" in output
    assert "batch_size must be at least 1, got 0" in output


@pytest.mark.parametrize(
    ("sig", "space"),
    [(signal.SIGINT, "interval(0.0011,0.0019)"), (signal.SIGTERM, "interval(0.0012,0.0018)")],
)
def test_interrupted_sweep_ends_runs_and_resumes_with_completed_trials(
    installed_project, tmp_path, sig, space
):
    project = installed_project
    log = tmp_path / "sweep.log"
    args = [f"learning_rate={space}", "hydra.sweeper.n_trials=3", *SLOW_TRIALS]
    sweep = start_sweep(project, log, *args)
    try:
        wait_until(lambda: second_trial_running(project, log), 240, "trial-001 to be running")
        os.killpg(sweep.pid, sig)
        sweep.wait(timeout=60)
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
    assert sweep.returncode != 0
    name = study_name_in(log.read_text())
    runs = study_runs(project, name)
    assert runs["trial-000"].info.status == "FINISHED"
    assert runs["trial-001"].info.status == "KILLED"
    assert runs[f"sweep-{name}"].info.status == "KILLED"
    states = [t.state.name for t in load_study(project, name).trials]
    assert states == ["COMPLETE", "WAITING"], "no trial may be left RUNNING"

    # The same command again resumes: trial 0 is kept, trial 1 continues its run (issue 21),
    # one more runs to reach 3 in total.
    again = run([*TRAIN, "-m", *args], cwd=project)
    assert "Resuming study" in again.stdout + again.stderr
    states = [t.state.name for t in load_study(project, name).trials]
    assert states == ["COMPLETE", "COMPLETE", "COMPLETE"]
    runs = study_runs(project, name)
    assert runs["trial-001"].info.status == "FINISHED"
    assert runs["trial-001"].data.tags["resumed"] == "1"


def test_a_hard_killed_sweep_continues_its_interrupted_trial(installed_project, tmp_path):
    """SIGKILL mid-trial, then the same command: the trial continues from its last epoch,
    with its params, Optuna values and MLflow run (issue 21)."""
    import torch

    project = installed_project
    log = tmp_path / "sweep.log"
    six_epochs = [*SLOW_TRIALS, "trainer.max_epochs=6", "trainer.limit_val_batches=2"]
    args = ["learning_rate=interval(0.0013,0.0017)", "hydra.sweeper.n_trials=2", *six_epochs]

    def second_trial_checkpointed() -> bool:
        if not second_trial_running(project, log):
            return False
        run_id = study_runs(project, study_name_in(log.read_text()))["trial-001"].info.run_id
        last = project / "logs/lightning/model01" / run_id / "last.ckpt"
        return last.exists() and torch.load(last, weights_only=True)["epoch"] >= 1

    sweep = start_sweep(project, log, *args)
    try:
        wait_until(second_trial_checkpointed, 240, "trial-001's second epoch")
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait(timeout=30)
    name = study_name_in(log.read_text())
    runs = study_runs(project, name)
    assert (
        runs["trial-001"].info.status == "RUNNING"
        and runs[f"sweep-{name}"].info.status == "RUNNING"
    )
    study = load_study(project, name)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "RUNNING"]
    params = study.trials[1].params

    again = run([*TRAIN, "-m", *args], cwd=project)
    output = again.stdout + again.stderr
    assert "Continuing trial(s) [1], left RUNNING by a killed sweep" in output
    trial_runs = [r for r in all_study_runs(project, name) if "trial_number" in r.data.tags]
    assert sorted((r.info.run_name, r.info.status) for r in trial_runs) == [
        ("trial-000", "FINISHED"),
        ("trial-001", "FINISHED"),
    ]
    continued = next(r for r in trial_runs if r.info.run_name == "trial-001")
    assert continued.info.run_id == runs["trial-001"].info.run_id
    assert continued.data.tags["resumed"] == "1" and "test/acc" in continued.data.metrics
    parents = [r for r in all_study_runs(project, name) if r.info.run_name == f"sweep-{name}"]
    assert sorted(p.info.status for p in parents) == ["FINISHED", "KILLED"]
    study = load_study(project, name)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert study.trials[1].params == params
    assert sorted(study.trials[1].intermediate_values) == list(range(6))
    history = client(project).get_metric_history
    epochs = sum(len(history(r.info.run_id, "val/acc")) for r in trial_runs)
    assert epochs <= 13, f"{epochs} epochs trained for 2 trials of 6"


# The catalogue of bad inputs the README lists; each one must say what is wrong. `own`: the
# project's message (exit 2, no traceback, said once); the rest are Hydra's own.
@pytest.mark.parametrize(
    ("args", "expected", "own"),
    [
        (["foo=1"], "Could not override 'foo'", False),
        (["-m", "learning_rate=interval(0.001)"], "missing a required argument: 'end'", False),
        (["learning_rate=-0.1"], "learning_rate must be a positive number, got -0.1", True),
        (["batch_size=0"], "batch_size must be at least 1, got 0", True),
        (
            ["batch_size=many"],
            "Value 'many' of type 'str' could not be converted to Integer",
            True,
        ),
        (["optimized_metric=val/f1"], "optimized_metric must be one of val/acc, val/loss", True),
        (["data.val_fraction=1.5"], "data.val_fraction must be between 0 and 1, got 1.5", True),
        (["trainer.accelerator=gpu"], "No supported gpu backend found", True),
        (
            ["trainer.limit_val_batches=0"],
            "trainer.limit_val_batches=0 switches validation off",
            True,
        ),
        (
            ["-m", "learning_rate=interval(0.002,0.001)"],
            "learning_rate=interval(0.002,0.001) is reversed: the lower bound must be below "
            "the upper one; use interval(0.001,0.002)",
            True,
        ),
        (["-m", "learning_rate=interval(0.001,0.001)"], "interval(0.001,0.001) is empty", True),
        (
            ["-m", "learning_rate=tag(lug, interval(0.001,0.002))"],
            "learning_rate: unknown tag 'lug' on interval(...)",
            True,
        ),
        (
            ["-m", "learning_rate=tag(log, interval(0,0.1))"],
            "a log-scale interval must start above 0",
            True,
        ),
        (
            ["-m", "learning_rate=interval(0.001,0.002)", "hydra/sweeper/sampler=nope"],
            "Could not find 'hydra/sweeper/sampler/nope'",
            False,
        ),
        (
            [
                "-m",
                "learning_rate=interval(0.001,0.002)",
                "hydra.sweeper.sampler._target_=optuna.samplers.NopeSampler",
            ],
            "hydra.sweeper.sampler cannot be created: Error locating target",
            True,
        ),
    ],
)
def test_bad_training_input_says_what_is_wrong(installed_project, args, expected, own):
    before = len(all_runs(installed_project))
    result = run([*TRAIN, *args], cwd=installed_project, check=False, timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in output
    if own:
        assert "Traceback" not in output and result.returncode == 2
        # Said once: the `error:` line, not a log line repeating it on the console.
        assert output.count("error: ") == 1, output[-3000:]
        assert output.count(expected) == 1, output[-3000:]
    if "-m" in args:  # a refused sweep leaves nothing behind: no parent run, no trial run
        assert len(all_runs(installed_project)) == before


def all_runs(project: Path) -> list:
    mlflow_client = client(project)
    experiment = mlflow_client.get_experiment_by_name("model01")
    if experiment is None:
        return []
    return mlflow_client.search_runs([experiment.experiment_id], max_results=1000)


def test_a_sweep_with_nothing_left_to_run_adds_no_parent_run(installed_project):
    # A search space of its own: a new study, one trial, one parent.
    sweep = [*TRAIN, "-m", "learning_rate=interval(0.00113,0.00187)", *SMALL_RUN]
    first = run([*sweep, "hydra.sweeper.n_trials=1"], cwd=installed_project)
    study_name = study_name_in(first.stdout + first.stderr)
    names = [r.info.run_name for r in all_study_runs(installed_project, study_name)]
    assert sorted(names) == [f"sweep-{study_name}", "trial-000"]
    again = run([*sweep, "hydra.sweeper.n_trials=1"], cwd=installed_project)
    assert "Nothing to run" in again.stdout + again.stderr
    names = [r.info.run_name for r in all_study_runs(installed_project, study_name)]
    assert sorted(names) == [f"sweep-{study_name}", "trial-000"]
    assert len(load_study(installed_project, study_name).trials) == 1


def test_a_user_error_is_printed_once_and_kept_in_the_log_file(installed_project):
    result = run([*TRAIN, "learning_rate=-0.1"], cwd=installed_project, check=False, timeout=180)
    message = "learning_rate must be a positive number, got -0.1"
    assert result.returncode == 2
    # Hydra's console handler writes log records to stdout: the terminal shows both streams.
    assert (result.stdout + result.stderr).count(message) == 1
    assert result.stderr.startswith("error: Invalid config")
    logs = sorted((installed_project / "logs/logging_/model/model01").glob("*.log"))
    assert f"ConfigError: Invalid config (1 problem(s)):\n  - {message}" in logs[-1].read_text()


def test_unreachable_tracking_server_fails_within_seconds(installed_project):
    from server_process import free_port

    started = time.monotonic()
    result = run(
        [*TRAIN, *SMALL_RUN],
        cwd=installed_project,
        check=False,
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}",
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2
    assert (
        "did not answer within 5 s" in result.stderr
        and "unset MLFLOW_TRACKING_URI" in result.stderr
    )
    assert elapsed < 60, f"took {elapsed:.0f} s"


def test_missing_and_truncated_data_are_named(installed_project, tmp_path):
    make_dataset = [sys.executable, "src/dataset/dataset01/make_dataset.py", "download=false"]
    empty = run([*make_dataset, f"data_dir={tmp_path}"], cwd=installed_project, check=False)
    assert empty.returncode == 2
    assert f"MNIST is not in {tmp_path}/MNIST/raw" in empty.stderr
    assert "train-images-idx3-ubyte" in empty.stderr and "t10k-labels-idx1-ubyte" in empty.stderr

    raw = installed_project / "_data/data/MNIST/raw"
    copy = tmp_path / "copy"
    (copy / "MNIST/raw").mkdir(parents=True)
    for file in raw.glob("*-ubyte"):
        (copy / "MNIST/raw" / file.name).write_bytes(file.read_bytes())
    labels = copy / "MNIST/raw/t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:20])
    truncated = run([*make_dataset, f"data_dir={copy}"], cwd=installed_project, check=False)
    assert truncated.returncode == 2
    assert "t10k-labels-idx1-ubyte is 20 bytes but its header declares" in truncated.stderr
    assert "Traceback" not in truncated.stdout + truncated.stderr
