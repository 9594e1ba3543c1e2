"""The generated MLproject: `mlflow run . -e train ...` from the project root, for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import bake, run, write_mnist

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An own bake on PYTHONPATH (the session's installed project stays untouched)."""
    project = bake(tmp_path_factory.mktemp("mlproject"), init_git="yes")
    write_mnist(project, n_train=300, n_test=100)
    return project


def store(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(uri)


def project_store(project: Path) -> str:
    return f"sqlite:///{project / 'logs' / 'mlruns' / 'mlflow.db'}"


def mlflow_run(project: Path, *args: str, **env: str):
    command = ["mlflow", "run", ".", "-e", "train", "--env-manager", "local", *args]
    return run(command, cwd=project, timeout=600, PYTHONPATH=str(project), **env)


def model01_runs(client, filter_string: str):
    experiment = client.get_experiment_by_name("model01")
    assert experiment is not None
    return client.search_runs([experiment.experiment_id], filter_string, max_results=100)


def test_mlproject_declares_the_stages_and_training(project):
    from mlflow.projects._project_spec import load_project

    spec = load_project(str(project))
    assert spec.name == "mnist_experiments"
    assert {"make_dataset", "make_features", "train"} <= set(spec._entry_points)
    train = spec.get_entry_point("train")
    assert {"learning_rate", "batch_size", "max_epochs", "seed"} <= set(train.parameters)


def test_mlflow_run_trains_into_the_project_store(project):
    """The README's command, no MLFLOW_TRACKING_URI: MLflow keeps its own bookkeeping run
    in ./mlflow.db; the training run lands in logs/mlruns, linked to it."""
    mlflow_run(project, "-P", "learning_rate=0.0015", "-P", "max_epochs=1")

    runs = model01_runs(store(project_store(project)), "params.learning_rate = '0.0015'")
    assert len(runs) == 1
    trained = runs[0]
    assert trained.info.status == "FINISHED"
    assert trained.data.params["trainer.max_epochs"] == "1"
    assert "val/acc" in trained.data.metrics
    project_run_id = trained.data.tags["mlflow_project.run_id"]
    cli_run = store(f"sqlite:///{project / 'mlflow.db'}").get_run(project_run_id)
    assert cli_run.info.status == "FINISHED"
    assert cli_run.data.tags["mlflow.project.entryPoint"] == "train"


def test_mlflow_run_into_the_project_store_is_one_run(project):
    uri = project_store(project)
    mlflow_run(
        project,
        "--experiment-name",
        "model01",
        "-P",
        "learning_rate=0.0012",
        "-P",
        "max_epochs=1",
        MLFLOW_TRACKING_URI=uri,
    )

    runs = model01_runs(store(uri), "params.learning_rate = '0.0012'")
    assert len(runs) == 1, "mlflow run and the training made two runs"
    (one,) = runs
    assert one.info.status == "FINISHED"
    assert one.data.tags["mlflow.project.entryPoint"] == "train"
    assert one.data.tags["model_kind"] == "DigitCNN"
    assert one.info.run_name.startswith("run-")
    assert "val/acc" in one.data.metrics and "test/acc" in one.data.metrics
    assert "mlflow_project.run_id" not in one.data.tags
