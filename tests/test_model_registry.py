"""The `champion` alias after real sweeps: registered once per sweep, moved only by a better one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import SMALL_RUN, run

pytestmark = pytest.mark.slow

EXPERIMENT = "registry_test"  # its own experiment and registered model: other tests sweep model01


def sweep(project: Path, learning_rates: str) -> None:
    command = ["poetry", "run", "python", "src/model/model01/train.py", "-m"]
    command += [f"learning_rate=interval({learning_rates})", f"experiment_name={EXPERIMENT}"]
    run([*command, "hydra.sweeper.n_trials=1", *SMALL_RUN], cwd=project)


def client_for(project: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{project / 'logs' / 'mlruns' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def latest_sweep(project: Path):
    """The newest sweep parent run of EXPERIMENT and its best trial's run and value."""
    import optuna

    client = client_for(project)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1000
    )
    parent = next(r for r in runs if r.data.tags.get("run_kind") == "sweep")
    study_name = parent.data.tags["study_name"]
    storage = f"sqlite:///{project / 'logs' / 'optuna.db'}"
    best = optuna.load_study(study_name=study_name, storage=storage).best_trial
    trial = next(
        r
        for r in runs
        if r.data.tags.get("study_name") == study_name
        and r.data.tags.get("trial_number") == str(best.number)
    )
    return parent, trial, best.value


def champion(project: Path):
    return client_for(project).get_model_version_by_alias(EXPERIMENT, "champion")


def test_champion_follows_the_better_of_two_sweeps(installed_project):
    project = installed_project
    sweep(project, "0.0001,0.0002")  # a tiny learning rate: a weak first champion
    parent1, trial1, value1 = latest_sweep(project)
    first = champion(project)
    assert first.run_id == trial1.info.run_id
    assert first.tags["optimized_metric"] == "val/acc"
    assert float(first.tags["optimized_value"]) == pytest.approx(value1)
    assert client_for(project).get_run(parent1.info.run_id).data.tags["champion_version"] == "1"

    sweep(project, "0.003,0.006")  # another search space: a new study, usually better
    parent2, trial2, value2 = latest_sweep(project)
    assert parent2.info.run_id != parent1.info.run_id
    versions = client_for(project).search_model_versions(f"name = '{EXPERIMENT}'")
    assert sorted(v.run_id for v in versions) == sorted([trial1.info.run_id, trial2.info.run_id])
    # val/acc is maximised; a tie keeps the old champion.
    expected = trial2 if value2 > value1 else trial1
    assert champion(project).run_id == expected.info.run_id

    # Re-running the first sweep resumes its finished study: nothing new to register.
    before = champion(project).version
    sweep(project, "0.0001,0.0002")
    assert len(client_for(project).search_model_versions(f"name = '{EXPERIMENT}'")) == 2
    assert champion(project).version == before


def test_champion_is_what_serving_and_the_notebook_load(installed_project):
    project = installed_project
    if not client_for(project).search_registered_models(f"name = '{EXPERIMENT}'"):
        sweep(project, "0.0001,0.0002")
    code = (
        "from src.utils.commands.model_loading import model_uri, resolve_run\n"
        f"print(model_uri({EXPERIMENT!r}, 'champion'))\n"
        f"print(resolve_run({EXPERIMENT!r}, 'champion').info.run_id)\n"
    )
    uri, run_id = run([sys.executable, "-c", code], cwd=project).stdout.split()
    assert uri == f"models:/{EXPERIMENT}@champion"
    assert run_id == champion(project).run_id
