"""notebooks/mlflow_tracking_tour.ipynb, executed headless on the installed project (issue 9).

The notebook runs exactly as a user runs it: no MLFLOW_TRACKING_URI (conftest's `run`
removes it) and the kernel started in notebooks/, so its runs can only reach the project's
store `logs/mlruns/mlflow.db` through `configure_mlflow()`. The test then reads that store
with MlflowClient. It only looks at the `tour` experiment's runs started by this execution,
and checks that `model01` (which the sweep tests share) was left exactly as it was.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest

from conftest import run

pytestmark = pytest.mark.slow

NOTEBOOK = "notebooks/mlflow_tracking_tour.ipynb"
EXPERIMENT = "tour"
ARTIFACT_FILES = {
    "data/predictions.csv",  # log_artifact
    "reports/summary.md",  # log_artifacts (a folder)
    "reports/notes.txt",
    "notes/hello.txt",  # log_text
    "config/params.json",  # log_dict
    "config/params.yaml",
    "images/gradient.png",  # log_image (ndarray)
    "plots/loss_curve.png",  # log_figure (matplotlib)
}
# A shared 2-core CI machine; measured about 22 s there, of which ~14 s are imports.
TIME_LIMIT_S = 120


def client_for(project: Path):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{project / 'logs' / 'mlruns' / 'mlflow.db'}")


def model01_snapshot(project: Path) -> list[tuple]:
    """Every model01 run with its status, end time and data (empty if none yet)."""
    if not (project / "logs" / "mlruns" / "mlflow.db").exists():
        return []
    client = client_for(project)
    experiment = client.get_experiment_by_name("model01")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], max_results=10000)
    return sorted(
        (
            r.info.run_id,
            r.info.status,
            r.info.end_time,
            sorted(r.data.params.items()),
            sorted(r.data.metrics.items()),
            sorted(r.data.tags.items()),
        )
        for r in runs
    )


@pytest.fixture(scope="module")
def tour(installed_project: Path, tmp_path_factory: pytest.TempPathFactory):
    """Execute the notebook once with papermill; return what the checks need."""
    project = installed_project
    output = tmp_path_factory.mktemp("tour") / "tour_executed.ipynb"
    model01_before = model01_snapshot(project)
    started_ms = int(time.time() * 1000)
    started = time.monotonic()
    result = run(
        [
            sys.executable,
            "-m",
            "papermill",
            NOTEBOOK,
            str(output),
            "--cwd",
            "notebooks",  # where Jupyter starts a notebook's kernel
            "--kernel",
            "python3",
        ],
        cwd=project,
        timeout=300,
    )
    seconds = time.monotonic() - started
    print(f"\nmlflow_tracking_tour.ipynb executed in {seconds:.1f} s")
    from mlflow.entities import ViewType

    client = client_for(project)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None, "the notebook did not create the `tour` experiment"
    runs = client.search_runs(
        [experiment.experiment_id],
        f"attributes.start_time >= {started_ms}",
        run_view_type=ViewType.ALL,
        max_results=1000,
    )
    by_name = {}
    for found in runs:
        by_name.setdefault(found.info.run_name, []).append(found)
    return {
        "project": project,
        "client": client,
        "experiment": experiment,
        "runs": runs,
        "by_name": by_name,
        "output": output,
        "result": result,
        "seconds": seconds,
        "model01_before": model01_before,
    }


def one(tour, name: str):
    found = tour["by_name"].get(name, [])
    assert len(found) == 1, f"expected one run named {name!r}, got {len(found)}"
    return found[0]


def outputs_text(notebook_path: Path) -> str:
    notebook = nbformat.read(notebook_path, as_version=4)
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output["text"])
            elif "data" in output:
                parts.append(str(output["data"].get("text/plain", "")))
    return "\n".join(parts)


def test_the_stored_notebook_has_no_outputs_and_uses_the_project_settings():
    source = Path(__file__).resolve().parents[1] / "{{cookiecutter.project_slug}}" / NOTEBOOK
    notebook = nbformat.read(source, as_version=4)
    nbformat.validate(notebook)
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert all(
        not c.outputs and c.execution_count is None for c in notebook.cells if c.cell_type == "code"
    )
    assert "configure_mlflow()" in code
    assert not re.search(r"^[^#]*set_tracking_uri\(", code, re.M), "use configure_mlflow()"
    assert '"model01"' not in code


def test_runs_fast_in_the_project_store_and_prints_the_ui(tour):
    assert tour["seconds"] < TIME_LIMIT_S, f"the tour took {tour['seconds']:.0f} s"
    project, experiment = tour["project"], tour["experiment"]
    assert experiment.artifact_location == (project / "logs/mlruns/artifacts/tour").as_uri()
    # Resolved from the project root, not from the kernel's folder (DESIGN.md §8).
    assert not (project / "notebooks" / "mlruns").exists()
    assert not (project / "mlruns").exists()
    text = outputs_text(tour["output"])
    assert "bash scripts/mlflow_ui.sh" in text
    assert (
        f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
        in text
    )


def test_model01_is_untouched(tour):
    assert model01_snapshot(tour["project"]) == tour["model01_before"]


def test_params_metrics_with_steps_and_tags(tour):
    basics = one(tour, "tour-basics")
    assert basics.info.status == "FINISHED"
    assert basics.data.params == {
        "learning_rate": "0.01",
        "batch_size": "16",
        "seed": "0",
        "optimizer": "sgd",
    }
    history = tour["client"].get_metric_history(basics.info.run_id, "accuracy")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2, 3, 4]
    assert basics.data.metrics["accuracy"] == pytest.approx(0.9)
    assert len(tour["client"].get_metric_history(basics.info.run_id, "loss")) == 5
    assert basics.data.tags["model_kind"] == "toy"
    assert basics.data.tags["tour_section"] == "basics"


def test_a_raising_block_leaves_a_failed_run(tour):
    failing = one(tour, "tour-fails")
    assert failing.info.status == "FAILED"
    assert failing.data.params == {"will_fail": "True"}
    assert "caught: something went wrong inside the run" in outputs_text(tour["output"])


def test_every_artifact_kind_is_stored(tour):
    import mlflow.artifacts

    artifacts = one(tour, "tour-artifacts")
    client = tour["client"]

    def list_all(path=None):
        for item in client.list_artifacts(artifacts.info.run_id, path):
            yield from list_all(item.path) if item.is_dir else [item.path]

    assert set(list_all()) == ARTIFACT_FILES
    root = Path(
        mlflow.artifacts.download_artifacts(
            run_id=artifacts.info.run_id, tracking_uri=client.tracking_uri
        )
    )
    assert (root / "notes/hello.txt").read_text() == "Hello, MLflow!"
    assert json.loads((root / "config/params.json").read_text()) == {
        "model": {"hidden": 8},
        "lr": 0.01,
    }
    assert "hidden: 8" in (root / "config/params.yaml").read_text()
    for image in ("images/gradient.png", "plots/loss_curve.png"):
        assert (root / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image


def test_the_logged_pytorch_model_loads_back_as_its_class(tour):
    import mlflow.pytorch
    import torch
    from mlflow.models import Model

    logged = one(tour, "tour-model")
    uri = f"runs:/{logged.info.run_id}/model"
    mlflow.set_tracking_uri(tour["client"].tracking_uri)
    try:
        flavor = Model.load(uri).flavors["pytorch"]
        model = mlflow.pytorch.load_model(uri)
    finally:
        mlflow.set_tracking_uri(None)
    assert flavor.get("serialization_format", "pickle") == "pickle"
    # The class was defined in the notebook: cloudpickle stored it by value.
    assert type(model).__name__ == "TinyNet"
    assert model(torch.zeros(3, 4)).shape == (3, 2)
    assert "TinyNet models:/m-" in outputs_text(tour["output"])


def test_a_parent_run_with_nested_children(tour):
    parent = one(tour, "tour-parent")
    children = [
        r for r in tour["runs"] if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    ]
    assert sorted(c.info.run_name for c in children) == ["tour-child-lr0.01", "tour-child-lr0.1"]
    assert all(c.info.status == "FINISHED" and "val_score" in c.data.metrics for c in children)
    assert parent.data.params["best_learning_rate"] == "0.01"
    assert "mlflow.parentRunId" not in parent.data.tags


def test_autolog_records_a_lightning_fit(tour):
    autologged = one(tour, "tour-autolog")
    assert autologged.info.status == "FINISHED"
    params, metrics = autologged.data.params, autologged.data.metrics
    assert params["epochs"] == "3" and params["optimizer_name"] == "SGD"
    assert float(params["lr"]) == pytest.approx(0.1)
    assert {"train_loss_step", "train_loss_epoch"} <= set(metrics)
    history = tour["client"].get_metric_history(autologged.info.run_id, "train_loss_epoch")
    assert len(history) == 3  # one value per epoch


def test_search_runs_filters_on_a_tag_and_a_metric(tour):
    client, experiment = tour["client"], tour["experiment"]
    found = client.search_runs(
        [experiment.experiment_id], "tags.model_kind = 'toy' and metrics.accuracy > 0.8"
    )
    assert one(tour, "tour-basics").info.run_id in {r.info.run_id for r in found}
    assert "run(s) found" in outputs_text(tour["output"])
