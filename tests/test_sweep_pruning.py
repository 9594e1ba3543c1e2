"""Pruning in real sweeps (issue 16): in the sweep's process, under joblib, and with a
shared study in PostgreSQL. Timing targets live in benchmarks/run.py, not here."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from postgres_server import postgres_server_fixture  # noqa: F401 - the fixture

from conftest import SMALL_RUN, project_env, run, study_name_of, sweep_runs

pytestmark = pytest.mark.slow

TRAIN = [sys.executable, "src/model/model01/train.py", "-m"]
# A pruner that surely prunes: no accuracy reaches 2. One warm-up epoch, so a pruned trial
# has trained 2 of its 3 epochs; pruning must not wait for completed trials.
ALWAYS_PRUNE = [
    "~hydra/sweeper/pruner",
    "++hydra.sweeper.pruner={_target_: optuna.pruners.ThresholdPruner, lower: 2.0, "
    "n_warmup_steps: 1}",
]
THREE_EPOCHS = [
    *SMALL_RUN,
    "trainer.max_epochs=3",
    "callbacks.early_stopping=null",
    "mlflow.log_model=false",
]


def mlflow_runs(project: Path, study_name: str):
    """The study's MLflow client, parent runs, and trial runs by trial number."""
    client, _, parents, trials = sweep_runs(project, study_name)
    return client, parents, {int(r.data.tags["trial_number"]): r for r in trials}


def optuna_trials(storage: str, study_name: str):
    import optuna

    return optuna.load_study(study_name=study_name, storage=storage).trials


def sqlite_storage(project: Path) -> str:
    return f"sqlite:///{project / 'logs' / 'optuna.db'}"


def assert_pruned_at_second_epoch(project: Path, storage: str, name: str, n_trials: int) -> None:
    """Every trial PRUNED in Optuna after epochs 0 and 1; its MLflow run FINISHED, tagged,
    with the metrics of those epochs and nothing a completed trial adds."""
    import optuna

    trials = optuna_trials(storage, name)
    assert [t.state for t in trials] == [optuna.trial.TrialState.PRUNED] * n_trials
    client, parents, runs = mlflow_runs(project, name)
    assert sorted(runs) == list(range(n_trials))
    for trial in trials:
        assert sorted(trial.intermediate_values) == [0, 1]
        logged = runs[trial.number]
        tags = logged.data.tags
        assert logged.info.status == "FINISHED" and "error" not in tags
        assert tags["pruned"] == "true" and tags["pruned_at_epoch"] == "1"
        history = client.get_metric_history(logged.info.run_id, "val/acc")
        assert sorted(m.step for m in history) == sorted({m.step for m in history})
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
            [trial.intermediate_values[0], trial.intermediate_values[1]]
        )
        assert "train/loss" in logged.data.metrics
        assert "test/acc" not in logged.data.metrics, "a pruned trial ran the test pass"
        artifacts = {a.path for a in client.list_artifacts(logged.info.run_id)}
        assert "checkpoints" not in artifacts and "plots" not in artifacts
    for parent in parents:
        assert parent.info.status == "FINISHED"
        assert parent.data.metrics["n_complete"] == 0
        assert parent.data.metrics["n_failed"] == 0
        assert "champion_version" not in parent.data.tags


def test_a_pruned_trial_is_pruned_in_optuna_and_a_tagged_finished_run_in_mlflow(
    installed_project,
):
    project = installed_project
    # max_failure_rate=0: one failed trial would stop the sweep; pruned ones must not.
    command = [
        *TRAIN,
        "learning_rate=interval(0.0011,0.0012)",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.max_failure_rate=0",
        *ALWAYS_PRUNE,
        *THREE_EPOCHS,
    ]
    result = run(command, cwd=project)
    output = result.stdout + result.stderr
    name = study_name_of(output)
    assert "Trial 0 pruned: Trial was pruned at epoch 1." in output
    assert "Trial 1 pruned" in output
    assert "Traceback" not in output and "Job failed" not in output
    assert_pruned_at_second_epoch(project, sqlite_storage(project), name, 2)
    client, (parent,), _ = mlflow_runs(project, name)
    assert parent.data.metrics["n_pruned"] == 2 and parent.data.metrics["n_trials"] == 2
    summary_file = client.download_artifacts(parent.info.run_id, "study_summary.json")
    summary = json.loads(Path(summary_file).read_text())
    assert summary["trial_counts"] == {"PRUNED": 2} and "best_trial" not in summary

    # n_trials counts pruned trials too: the same command again has nothing to run.
    again = run(command, cwd=project)
    assert "Nothing to run" in again.stdout + again.stderr
    assert len(optuna_trials(sqlite_storage(project), name)) == 2


def test_pruner_null_prunes_nothing(installed_project):
    import optuna

    project = installed_project
    # The README's command, small.
    readme = "poetry run python src/model/model01/train.py -m hydra.sweeper.pruner=null"
    command = [*readme.split(), "learning_rate=interval(0.001,0.003)"]
    assert f"{readme} 'learning_rate=interval(0.001,0.003)'" in (project / "README.md").read_text()
    result = run([*command, "hydra.sweeper.n_trials=2", *THREE_EPOCHS], cwd=project)
    name = study_name_of(result.stdout + result.stderr)
    trials = optuna_trials(sqlite_storage(project), name)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    # Nothing was reported to Optuna: no pruner to ask.
    assert all(t.intermediate_values == {} for t in trials)
    client, (parent,), runs = mlflow_runs(project, name)
    for logged in runs.values():
        assert "pruned" not in logged.data.tags and "test/acc" in logged.data.metrics
        assert len(client.get_metric_history(logged.info.run_id, "val/acc")) == 3
    assert parent.data.metrics["n_pruned"] == 0 and parent.data.metrics["n_complete"] == 2


def test_pruning_reaches_trials_in_joblib_workers(installed_project):
    project = installed_project
    result = run(
        [
            *TRAIN,
            "learning_rate=interval(0.0013,0.0014)",
            "hydra/launcher=joblib",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=2",
            *ALWAYS_PRUNE,
            *THREE_EPOCHS,
        ],
        cwd=project,
    )
    output = result.stdout + result.stderr
    assert "Joblib.Parallel(n_jobs=2" in output
    name = study_name_of(output)
    assert_pruned_at_second_epoch(project, sqlite_storage(project), name, 2)
    _, _, runs = mlflow_runs(project, name)
    pids = {r.data.tags["process.pid"] for r in runs.values()}
    assert len(pids) == 2, "the trials did not run in two worker processes"


def test_pruning_reaches_a_trial_in_a_submitit_job(installed_project):
    pytest.importorskip(
        "hydra_plugins.hydra_submitit_launcher",
        reason="hydra-submitit-launcher is not installed (a dependency of the project)",
    )
    project = installed_project
    result = run(
        [
            *TRAIN,
            "learning_rate=interval(0.0015,0.0016)",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            "hydra.sweeper.n_trials=1",
            *ALWAYS_PRUNE,
            *THREE_EPOCHS,
        ],
        cwd=project,
    )
    output = result.stdout + result.stderr
    assert "Submitit 'local' sweep output dir" in output
    assert_pruned_at_second_epoch(project, sqlite_storage(project), study_name_of(output), 1)


def test_two_workers_prune_trials_of_one_postgres_study(
    installed_project, postgres_server, tmp_path
):
    pytest.importorskip("psycopg", reason="psycopg (the PostgreSQL driver) is missing")
    project = installed_project
    storage = postgres_server.create_database("optuna_pruning")
    command = [
        *TRAIN,
        "learning_rate=interval(0.0014,0.0015)",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.n_trials=2",
        *ALWAYS_PRUNE,
        *THREE_EPOCHS,
    ]
    logs = [tmp_path / f"worker{i}.log" for i in (1, 2)]
    workers = []
    for log in logs:  # two terminals, one command
        with log.open("wb") as sink:
            workers.append(
                subprocess.Popen(
                    command, cwd=project, env=project_env(), stdout=sink, stderr=subprocess.STDOUT
                )
            )
            time.sleep(1)  # both join the study; the first creates its tables
    codes = [worker.wait(timeout=600) for worker in workers]
    outputs = [log.read_text(errors="replace") for log in logs]
    assert codes == [0, 0], "\n\n".join(o[-4000:] for o in outputs)
    (name,) = {study_name_of(o) for o in outputs}
    for output in outputs:
        assert postgres_server.password not in output, "the database password was printed"
    assert_pruned_at_second_epoch(project, storage, name, 2)
    _, _, runs = mlflow_runs(project, name)
    for logged in runs.values():
        assert postgres_server.password not in json.dumps(logged.data.params)
        assert postgres_server.password not in json.dumps(logged.data.tags)


def test_parallel_trials_refill_a_freed_slot_at_once(installed_project):
    """n_jobs=2 under joblib: the third trial starts when the first trial ends, not when
    the slowest trial of a batch does (Hydra issue 1954), so a pruned trial's worker is
    not left idle. Three epoch counts far apart make the first two trials end apart."""
    project = installed_project
    result = run(
        [
            *TRAIN,
            "hydra/sweeper/sampler=grid",
            "trainer.max_epochs=choice(1,10,20)",
            "hydra/launcher=joblib",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.pruner=null",
            *(a for a in SMALL_RUN if not a.startswith("trainer.max_epochs=")),
            "callbacks.early_stopping=null",
            "mlflow.log_model=false",
        ],
        cwd=project,
    )
    name = study_name_of(result.stdout + result.stderr)
    _, _, runs = mlflow_runs(project, name)
    assert sorted(runs) == [0, 1, 2]
    first, second, third = (runs[n].info for n in (0, 1, 2))
    assert third.start_time >= min(first.end_time, second.end_time)
    assert third.start_time < max(first.end_time, second.end_time), (
        "the third trial waited for the slower trial of the first two"
    )


def test_a_ddp_trial_is_pruned_on_every_rank(installed_project):
    """2 CPU processes per trial (gloo): rank 0 decides, every rank stops, nothing hangs.
    The pruner comes from a hydra.sweeper override, which the ranks Lightning starts do
    not get on their command line: rank 0 hands it down."""
    project = installed_project
    name = "ddp_pruning"
    result = run(
        [
            *TRAIN,
            "learning_rate=interval(0.0016,0.0017)",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.strategy=ddp",
            f"experiment_name={name}",
            "hydra.sweeper.n_trials=1",
            *ALWAYS_PRUNE,
            *THREE_EPOCHS,
        ],
        cwd=project,
        timeout=400,
    )
    output = result.stdout + result.stderr
    assert "Trial 0 pruned: Trial was pruned at epoch 1." in output
    import optuna
    from mlflow import MlflowClient

    (trial,) = optuna_trials(sqlite_storage(project), study_name_of(output))
    assert trial.state == optuna.trial.TrialState.PRUNED
    client = MlflowClient(f"sqlite:///{project / 'logs' / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], "tags.trial_number = '0'")
    assert len(runs) == 1, "one MLflow run for the trial, rank 0's"
    assert runs[0].info.status == "FINISHED" and runs[0].data.tags["pruned"] == "true"
    assert runs[0].data.tags["pruned_at_epoch"] == "1"
