"""The README's sweep, for real: Hydra multirun + Optuna sweeper + Lightning + MLflow SQLite."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SMALL_RUN, SWEEP_COMMAND, run, study_name_of, sweep_runs

pytestmark = pytest.mark.slow


def client_for(project: Path):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{project / 'logs' / 'mlruns' / 'mlflow.db'}")


def optuna_study(project: Path, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=optuna_storage(project))


def optuna_storage(project: Path) -> str:
    return f"sqlite:///{project / 'logs' / 'optuna.db'}"


def test_sweep_console_is_readable(swept_project):
    _, result = swept_project
    console = result.stdout + result.stderr
    for number in range(3):
        assert f"sweep.trial_number={number}" in console, "Hydra's trial line is missing"
    assert "Best value:" in console
    for noise in (
        "GPU available",
        "Tip:",
        "UserWarning",
        "ExperimentalWarning",
        "execution_whitelist",
        "Context impl SQLiteImpl",
        "Saving pytorch model by Pickle",
    ):
        assert noise not in console, f"{noise!r} leaked into the sweep's console"


def test_every_trial_is_a_finished_mlflow_run_nested_under_one_parent(swept_project):
    project, result = swept_project
    client, experiment, parents, trials = sweep_runs(project, study_name_of(result))
    assert experiment.artifact_location == (project / "logs/mlruns/artifacts/model01").as_uri()
    assert len(parents) == 1 and len(trials) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == f"sweep-{parent.data.tags['study_name']}"
    assert sorted(t.info.run_name for t in trials) == ["trial-000", "trial-001", "trial-002"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True)
    for trial in trials:
        tags, params, metrics = trial.data.tags, trial.data.params, trial.data.metrics
        assert trial.info.status == "FINISHED"
        assert trial.info.end_time >= trial.info.start_time
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["study_name"] == parent.data.tags["study_name"]
        assert tags["mlflow.runName"] == f"trial-{int(tags['trial_number']):03d}"
        assert tags["model_kind"] == "DigitCNN"
        assert tags["mlflow.source.name"] == "src/model/model01/train.py"
        assert tags["mlflow.source.git.commit"] == head.stdout.strip()
        assert tags["git_dirty"] == "false"
        assert "learning_rate=" in tags["hydra.overrides"]
        assert "trainer.max_epochs=1" in tags["hydra.overrides"]
        assert 0.001 <= float(params["learning_rate"]) <= 0.002
        assert params["trainer.max_epochs"] == "1" and params["optimized_metric"] == "val/acc"
        assert {"train/loss", "val/loss", "val/acc", "test/acc"} <= set(metrics)
        steps = client.get_metric_history(trial.info.run_id, "train/loss")
        assert len(steps) >= 3 and len({m.step for m in steps}) == len(steps)


def test_both_stores_are_written_ahead_and_their_files_alone_hold_every_run(
    swept_project, tmp_path
):
    import sqlite3

    project, result = swept_project
    logs = project / "logs"
    for database in (logs / "mlruns" / "mlflow.db", logs / "optuna.db"):
        with sqlite3.connect(database) as opened:
            assert opened.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # The sweep process ended with os._exit, its connections unclosed: what it wrote was
    # checkpointed into the database files, so copies of the files alone hold every run.
    copies = tmp_path / "copies"
    copies.mkdir()
    # Copied by another process, as a user's `cp` would: a close() of the file in this one
    # would drop the SQLite locks of this process's own open connections (POSIX locks are
    # per process), and the next sweep would then delete a WAL they still read.
    for database in (logs / "mlruns" / "mlflow.db", logs / "optuna.db"):
        subprocess.run(["cp", str(database), str(copies)], check=True)
    name = study_name_of(result)
    with sqlite3.connect(copies / "mlflow.db") as opened:
        tagged = opened.execute(
            "SELECT count(*) FROM tags WHERE key = 'study_name' AND value = ?", (name,)
        ).fetchone()[0]
    assert tagged == 4  # the parent and its three trials
    with sqlite3.connect(copies / "optuna.db") as opened:
        states = opened.execute(
            "SELECT state FROM trials JOIN studies USING (study_id) WHERE study_name = ?",
            (name,),
        ).fetchall()
    assert sorted(states) == [("COMPLETE",)] * 3


def test_trial_artifacts_include_config_checkpoint_plot_and_a_loadable_model(swept_project):
    import mlflow.pytorch
    import torch

    project, result = swept_project
    client, _, _, trials = sweep_runs(project, study_name_of(result))
    trial = trials[0]
    run_id = trial.info.run_id
    listed = {a.path for a in client.list_artifacts(run_id)}
    assert {"config", "checkpoints", "plots"} <= listed
    assert {a.path for a in client.list_artifacts(run_id, "config")} == {
        "config/config.yaml",
        "config/overrides.txt",
    }
    assert [a.path for a in client.list_artifacts(run_id, "checkpoints")] == [
        "checkpoints/best.ckpt"
    ]
    assert [a.path for a in client.list_artifacts(run_id, "plots")] == [
        "plots/confusion_matrix.png"
    ]
    config = Path(client.download_artifacts(run_id, "config/config.yaml")).read_text()
    assert f"learning_rate: {trial.data.params['learning_rate']}" in config
    png = Path(client.download_artifacts(run_id, "plots/confusion_matrix.png")).read_bytes()
    assert png.startswith(b"\x89PNG")

    mlflow.set_tracking_uri(client.tracking_uri)
    model = mlflow.pytorch.load_model(f"runs:/{run_id}/model")
    assert type(model).__name__ == "DigitCNN"
    logits = model(torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 10)
    info = mlflow.models.get_model_info(f"runs:/{run_id}/model")
    assert info.signature is not None and info.saved_input_example_info is not None


def test_parent_run_holds_the_study_summary_and_plots(swept_project):
    project, result = swept_project
    client, _, parents, trials = sweep_runs(project, study_name_of(result))
    parent = parents[0]
    best_value = max(t.data.metrics["val/acc"] for t in trials)
    assert parent.data.metrics["best_value"] == pytest.approx(best_value)
    assert parent.data.metrics["n_trials"] == 3
    summary_file = client.download_artifacts(parent.info.run_id, "study_summary.json")
    summary = json.loads(Path(summary_file).read_text())
    # Ties are common on tiny data: Optuna's best trial is the first with the best value.
    best_trial = next(
        t for t in trials if int(t.data.tags["trial_number"]) == summary["best_trial"]
    )
    assert best_trial.data.metrics["val/acc"] == pytest.approx(best_value)
    assert parent.data.params["best.learning_rate"] == best_trial.data.params["learning_rate"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "study_summary.json" in artifacts
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    # One parameter searched: its importance would be 1 by definition, so no plot.
    assert plots == {"plots/optimization_history.png"}
    skipped = parent.data.tags["plot_skipped.plots/param_importances.png"]
    assert skipped == "one parameter searched"
    assert summary["trial_counts"] == {"COMPLETE": 3}
    assert summary["direction"] == "maximize"


def test_optuna_study_holds_the_same_three_trials(swept_project):
    import optuna

    project, result = swept_project
    name = study_name_of(result)
    _, _, parents, trials = sweep_runs(project, name)
    study = optuna_study(project, name)
    assert parents[0].data.tags["study_name"] == name and name.startswith("model01-")
    complete = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(complete) == 3 and len(study.trials) == 3
    # Optuna Dashboard labels its plots with this name, not "Objective 0".
    assert study.metric_names == ["val/acc"]
    by_number = {int(t.data.tags["trial_number"]): t for t in trials}
    for trial in complete:
        run = by_number[trial.number]
        assert trial.value == pytest.approx(run.data.metrics["val/acc"])
        assert trial.params["learning_rate"] == pytest.approx(
            float(run.data.params["learning_rate"])
        )


def test_rerunning_resumes_the_study_and_n_trials_counts_in_total(swept_project):
    project, result = swept_project
    name = study_name_of(result)
    # The same command again: all 3 trials exist, so nothing new is trained.
    again = run(SWEEP_COMMAND + ["hydra.sweeper.n_trials=3", *SMALL_RUN], cwd=project)
    assert study_name_of(again) == name
    assert "Nothing to run" in again.stdout + again.stderr
    assert len(optuna_study(project, name).trials) == 3
    # Asking for 5 in total adds exactly 2, numbered on from the first sweep.
    more = run(SWEEP_COMMAND + ["hydra.sweeper.n_trials=5", *SMALL_RUN], cwd=project)
    assert study_name_of(more) == name
    assert "Resuming study" in more.stdout + more.stderr
    study = optuna_study(project, name)
    assert len(study.trials) == 5
    _, _, parents, trials = sweep_runs(project, name)
    # Two parents: the re-run with nothing to run adds no empty one (issue 15).
    assert len(parents) == 2 and len(trials) == 5
    assert sorted(t.info.run_name for t in trials)[-2:] == ["trial-003", "trial-004"]
    rates = [t.params["learning_rate"] for t in study.trials]
    assert len(set(rates)) == 5, "the resumed sweep proposed an earlier point again"


def test_a_different_search_space_starts_a_new_study(swept_project):
    import optuna

    project, result = swept_project
    other_space = SWEEP_COMMAND[:-1] + [
        "learning_rate=interval(0.002,0.004)",
        "model.dropout=choice(0.1,0.3)",
    ]
    other = run(other_space + ["hydra.sweeper.n_trials=2", *SMALL_RUN], cwd=project)
    name = study_name_of(other)
    assert name != study_name_of(result)
    assert name in optuna.get_all_study_names(optuna_storage(project))
    study = optuna_study(project, name)
    assert len(study.trials) == 2
    for trial in study.trials:
        assert 0.002 <= trial.params["learning_rate"] <= 0.004
        assert trial.params["model.dropout"] in (0.1, 0.3)
    # Two parameters searched: the parent also plots their importances.
    client, _, parents, _ = sweep_runs(project, name)
    plots = {a.path for a in client.list_artifacts(parents[0].info.run_id, "plots")}
    assert plots == {"plots/optimization_history.png", "plots/param_importances.png"}


def test_a_single_run_logs_the_same_without_a_parent(installed_project):
    result = run(
        [sys.executable, "src/model/model01/train.py", *SMALL_RUN, "learning_rate=0.0017"],
        cwd=installed_project,
    )
    client = client_for(installed_project)
    experiment = client.get_experiment_by_name("model01")
    runs = client.search_runs(
        [experiment.experiment_id], "params.learning_rate = '0.0017'", max_results=5
    )
    assert len(runs) == 1, result.stdout
    single = runs[0]
    assert single.info.status == "FINISHED"
    assert single.info.run_name.startswith("run-")
    assert "mlflow.parentRunId" not in single.data.tags
    assert {"train/loss", "val/loss", "val/acc", "test/acc"} <= set(single.data.metrics)
    # The command's last lines name the run and say where to look next.
    last = result.stdout.strip().splitlines()[-3:]
    run_id = single.info.run_id
    assert last[0] == (
        f"Run {single.info.run_name} (run id {run_id}) of experiment model01 finished: "
        f"test/acc {single.data.metrics['test/acc']:.4f}, "
        f"test/loss {single.data.metrics['test/loss']:.4f}"
    ), result.stdout[-2000:]
    assert f"#/experiments/{experiment.experiment_id}/runs/{run_id}" in last[1]
    assert f"experiment_name=model01, run_id={run_id}" in last[2]
    if shutil.which("srun"):  # Slurm is installed (CI): no hint to use it outside a job
        assert "srun` command is available" not in result.stdout + result.stderr
    assert {a.path for a in client.list_artifacts(single.info.run_id)} >= {
        "config",
        "checkpoints",
        "plots",
    }
