"""commands/model_loading.py and notebooks/load_model.ipynb on the swept project's store."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from conftest import TEMPLATE_DIR, run

pytestmark = pytest.mark.slow

NOTEBOOK = Path("notebooks") / "load_model.ipynb"


def client_for(project: Path):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{project / 'logs' / 'mlruns' / 'mlflow.db'}")


def finished_trial_runs(project: Path) -> list:
    client = client_for(project)
    experiment = client.get_experiment_by_name("model01")
    runs = client.search_runs(
        [experiment.experiment_id], "attributes.status = 'FINISHED'", max_results=1000
    )
    return [
        r
        for r in runs
        if r.data.tags.get("run_kind") != "sweep" and r.data.tags.get("trial_number")
    ]


def best_val_acc(project: Path, run_id: str) -> float:
    return max(m.value for m in client_for(project).get_metric_history(run_id, "val/acc"))


def execute_notebook(project: Path, tmp_path: Path, *parameters: str) -> tuple[str, dict]:
    """Run the notebook headless with papermill; return its printed text and the notebook."""
    out = tmp_path / "executed.ipynb"
    command = [sys.executable, "-m", "papermill", str(project / NOTEBOOK), str(out)]
    command += [*parameters, "--cwd", str(project / "notebooks"), "--kernel", "python3"]
    run(command, cwd=tmp_path, timeout=600)
    executed = json.loads(out.read_text())
    text = []
    for cell in executed["cells"]:
        for output in cell.get("outputs", []):
            if output.get("name") == "stdout":
                text.append("".join(output["text"]))
    return "".join(text), executed


def images_shown(executed: dict) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in executed["cells"]
        for output in cell.get("outputs", [])
    )


def printed_accuracy(text: str) -> float:
    match = re.search(r"^accuracy: (\d\.\d{4}) on (\d+) test images", text, re.MULTILINE)
    assert match, text
    assert int(match.group(2)) == 200  # the fixture's whole test file
    return float(match.group(1))


def printed_run_id(text: str) -> str:
    match = re.search(r"^run \S+ \(([0-9a-f]{32})\)", text, re.MULTILINE)
    assert match, text
    return match.group(1)


def test_notebook_is_stored_without_outputs_and_parameterised():
    notebook = json.loads((TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / NOTEBOOK).read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert code[0]["metadata"]["tags"] == ["parameters"]
    source = "".join(code[0]["source"])
    assert 'experiment_name = "model01"' in source and "run_id = None" in source


def test_notebook_with_a_trial_run_id_prints_that_runs_test_accuracy(swept_project, tmp_path):
    project, _ = swept_project
    trial = finished_trial_runs(project)[0]
    text, executed = execute_notebook(project, tmp_path, "-p", "run_id", trial.info.run_id)
    assert printed_run_id(text) == trial.info.run_id
    # Same model, same 200 test images: the logged test/acc, to the 4 printed decimals.
    assert printed_accuracy(text) == pytest.approx(trial.data.metrics["test/acc"], abs=5.1e-5)
    assert "agrees with the MLflow model: True" in text  # the Lightning checkpoint loads too
    assert images_shown(executed) == 2  # the sample grid and the confusion matrix, inline


def test_notebook_without_run_id_picks_the_best_trial_never_the_parent(swept_project, tmp_path):
    project, _ = swept_project
    text, _ = execute_notebook(project, tmp_path)
    picked = client_for(project).get_run(printed_run_id(text))
    assert picked.data.tags.get("run_kind") != "sweep" and picked.info.status == "FINISHED"
    best = max(best_val_acc(project, r.info.run_id) for r in finished_trial_runs(project))
    assert best_val_acc(project, picked.info.run_id) == best
    assert printed_accuracy(text) == pytest.approx(picked.data.metrics["test/acc"], abs=5.1e-5)


def test_unknown_experiment_or_run_lists_what_exists(swept_project):
    project, _ = swept_project
    code = (
        "from src.utils.commands.model_loading import RunNotFoundError, resolve_run\n"
        "for args in (('no_such_experiment', None), ('model01', 'no_such_run')):\n"
        "    try:\n"
        "        resolve_run(*args)\n"
        "    except RunNotFoundError as error:\n"
        "        print(error)\n"
        "        print('---')\n"
    )
    text = run([sys.executable, "-c", code], cwd=project).stdout
    unknown_experiment, unknown_run, _ = text.split("---\n")
    assert "No MLflow experiment named 'no_such_experiment'" in unknown_experiment
    assert "model01" in unknown_experiment  # what exists
    assert "'no_such_run' is no run id or run name in experiment 'model01'" in unknown_run
    # A few recent runs, each with its id and name.
    assert re.search(r"^  [0-9a-f]{32}  (trial|sweep)-", unknown_run, re.MULTILINE)
