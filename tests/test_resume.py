"""Issue 21 on real processes: a SIGKILLed single run continued with `resume=`, bad
`resume=` input refused, and what is left on disk. The killed sweep's continuation is in
test_reliability.py (it replaced the FAILED-stub behaviour tested there)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import project_env, run

pytestmark = pytest.mark.slow

TRAIN = [sys.executable, "src/model/model01/train.py"]
EXPERIMENT = "resumed"  # its own experiment: `resume=last` sees only this test's runs
SIX_EPOCHS = [
    f"experiment_name={EXPERIMENT}",
    "trainer.max_epochs=6",
    "batch_size=32",
    "trainer.limit_train_batches=8",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.deterministic=true",
    "callbacks.early_stopping=null",
    "mlflow.log_model=false",
    "mlflow.system_metrics=false",
]


def store(project: Path):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'logs/mlruns/mlflow.db'}")
    return client, client.get_experiment_by_name(EXPERIMENT)


def runs_of(project: Path) -> dict[str, object]:
    client, experiment = store(project)
    return {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}


def kill_after_third_epoch(project: Path) -> str:
    """Start a run, SIGKILL it once its last.ckpt holds epoch 3 of 6; return its run id."""
    import torch

    before = set(runs_of(project))
    process = subprocess.Popen(
        [*TRAIN, *SIX_EPOCHS],
        cwd=project,
        env=project_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and process.poll() is None:
            new = set(runs_of(project)) - before
            last = new and project / f"logs/lightning/{EXPERIMENT}/{min(new)}/last.ckpt"
            if last and last.exists() and torch.load(last, weights_only=True)["epoch"] >= 2:
                process.kill()
                process.wait()
                return min(new)
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
    raise AssertionError(f"the run ended (exit {process.returncode}) before it could be killed")


def test_a_killed_run_resumes_where_it_stopped_and_ends_as_if_never_stopped(
    installed_project,
):
    project = installed_project
    # The uninterrupted run: its local checkpoints go once it has FINISHED (best.ckpt is
    # in MLflow).
    whole = run([*TRAIN, *SIX_EPOCHS], cwd=project)
    client, experiment = store(project)
    (uninterrupted,) = runs_of(project).values()
    assert uninterrupted.info.status == "FINISHED"
    assert not (project / f"logs/lightning/{EXPERIMENT}/{uninterrupted.info.run_id}").exists()
    artifacts = {a.path for a in client.list_artifacts(uninterrupted.info.run_id, "checkpoints")}
    assert artifacts == {"checkpoints/best.ckpt"}
    assert f"run id {uninterrupted.info.run_id}" in whole.stdout

    killed = kill_after_third_epoch(project)
    assert runs_of(project)[killed].info.status == "RUNNING"  # what SIGKILL leaves behind

    # Bad input: one message each, exit 2, nothing written (the killed run stays RUNNING).
    mine = SIX_EPOCHS[0]
    bad = [
        ([mine, "resume=0123456789abcdef"], "resume=0123456789abcdef: no run with this id"),
        ([mine, f"resume={uninterrupted.info.run_id}"], "has FINISHED, there is nothing to"),
        ([mine, f"resume={killed}", "model.channels=16"], "model.channels: 32 -> 16"),
        ([f"resume={killed}"], "belongs to experiment resumed, not model01: use that"),
    ]
    for args, message in bad:
        refused = run([*TRAIN, *args], cwd=project, check=False)
        output = refused.stdout + refused.stderr
        assert refused.returncode == 2 and "Traceback" not in output, output[-3000:]
        assert output.count(message) == 1, output[-3000:]
    assert {r: x.info.status for r, x in runs_of(project).items()} == {
        uninterrupted.info.run_id: "FINISHED",
        killed: "RUNNING",
    }

    # The experiment's next command marks it KILLED and says how to continue it.
    resumed = run([*TRAIN, *SIX_EPOCHS[:1], "resume=last"], cwd=project)
    output = resumed.stdout + resumed.stderr
    hint = f"marked KILLED. To continue it: python src/model/model01/train.py resume={killed}"
    assert hint in output
    assert f"run id {killed}" in resumed.stdout

    # One run, continued: the same id FINISHED, tagged, the epochs after the third trained
    # once, the metrics at the uninterrupted run's steps, the same test accuracy.
    runs = runs_of(project)
    assert set(runs) == {uninterrupted.info.run_id, killed}
    run_ = runs[killed]
    assert run_.info.status == "FINISHED" and run_.data.tags["resumed"] == "1"
    assert "resumed_at" in run_.data.tags and "killed_reason" not in run_.data.tags
    history = client.get_metric_history(killed, "val/acc")
    expected = client.get_metric_history(uninterrupted.info.run_id, "val/acc")
    assert len(history) <= 7
    assert {m.step for m in history} == {m.step for m in expected}
    assert run_.data.metrics["test/acc"] == uninterrupted.data.metrics["test/acc"]
    assert not (project / f"logs/lightning/{EXPERIMENT}/{killed}").exists()

    # Nothing left to continue.
    nothing = run([*TRAIN, *SIX_EPOCHS[:1], "resume=last"], cwd=project, check=False)
    assert nothing.returncode == 2
    assert f"experiment {EXPERIMENT} has no unfinished run" in nothing.stdout + nothing.stderr


def test_a_sweep_stopped_by_a_full_disk_says_so_and_continues_once_space_is_freed(
    installed_project,
):
    from mlflow import MlflowClient

    project = installed_project
    folder = project / "logs/lightning/diskfull"  # the runs' checkpoints: a 512 kB disk
    folder.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)]
    mounted = subprocess.run(mount, capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    sweep = [
        *TRAIN,
        "-m",
        "learning_rate=interval(0.001,0.002)",
        "hydra.sweeper.n_trials=1",
        "experiment_name=diskfull",
        "trainer.max_epochs=2",
        *SIX_EPOCHS[2:],
    ]
    try:
        full = run(sweep, cwd=project, check=False)
    finally:
        subprocess.run(["umount", str(folder)], check=True)
    output = full.stdout + full.stderr
    assert full.returncode == 1 and "Traceback" not in output, output[-4000:]
    message = f"no space left on the file system at {folder}: free some, then run the same sweep"
    assert message in output, output[-4000:]

    again = run(sweep, cwd=project)  # space freed: the same command continues the trial
    client = MlflowClient(f"sqlite:///{project / 'logs/mlruns/mlflow.db'}")
    experiment = client.get_experiment_by_name("diskfull")
    trials = client.search_runs([experiment.experiment_id], "tags.trial_number = '0'")
    assert [(r.info.status, r.data.tags.get("resumed")) for r in trials] == [("FINISHED", "1")]
    assert "Continuing" not in again.stdout + again.stderr  # not a dead trial: a waiting one


def test_a_ddp_run_stopped_with_ctrl_c_resumes_on_both_ranks(installed_project):
    """CPU, gloo, 2 processes: the ranks continue the run rank 0 chose."""
    import os
    import signal

    import torch

    project = installed_project
    ddp = [
        "experiment_name=ddp_resumed",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.max_epochs=4",
        *SIX_EPOCHS[2:],
    ]
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'logs/mlruns/mlflow.db'}")
    process = subprocess.Popen(
        [*TRAIN, *ddp],
        cwd=project,
        env=project_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C in a terminal reaches every rank
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            experiment = client.get_experiment_by_name("ddp_resumed")
            runs = experiment and client.search_runs([experiment.experiment_id])
            folder = runs and project / "logs/lightning/ddp_resumed" / runs[0].info.run_id
            last = folder and folder / "last.ckpt"
            if last and last.exists() and torch.load(last, weights_only=True)["epoch"] >= 1:
                os.killpg(process.pid, signal.SIGINT)
                process.wait(timeout=60)
                break
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    (killed,) = client.search_runs([experiment.experiment_id])
    assert killed.info.status == "KILLED"
    run([*TRAIN, *ddp[:1], "resume=last"], cwd=project)
    (resumed,) = client.search_runs([experiment.experiment_id])
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    assert resumed.data.tags["resumed"] == "1" and "test/acc" in resumed.data.metrics
    assert len(client.get_metric_history(resumed.info.run_id, "val/acc")) <= 5
