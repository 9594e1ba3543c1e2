"""scripts/serve_model.sh, for real: `mlflow models serve` answering REST calls."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from server_process import free_port, started, wait_for

from conftest import project_env, run, run_in_a_bare_environment

pytestmark = pytest.mark.slow

# Test images and the Python loader's logits for them, printed as JSON by the project.
LOADER_LOGITS = """
import json, sys
import torch
from src.feature.feature01.mnist_datamodule import MNISTDataModule
from src.utils.commands.model_loading import load_model

data = MNISTDataModule()
data.setup("test")
images = data.test_set.tensors[0][:16]
with torch.no_grad():
    logits = load_model("model01", sys.argv[1])(images)
print(json.dumps({"images": images.tolist(), "logits": logits.tolist()}))
"""


def serve_command(project: Path, *args: str) -> list[str]:
    return ["bash", str(project / "scripts" / "serve_model.sh"), *args]


def trial_run_id(project: Path) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'logs' / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("model01")
    runs = client.search_runs([experiment.experiment_id], "tags.trial_number = '0'")
    return runs[0].info.run_id


def run_readme_curl(project: Path, port: int) -> str | None:
    """Run the README's curl example, as written, against the server on `port`."""
    if shutil.which("curl") is None:
        return None
    lines = (project / "README.md").read_text().splitlines()
    start = next(
        i for i, line in enumerate(lines) if "curl -s http://127.0.0.1:5001/invocations" in line
    )
    command = " ".join(line.strip().rstrip("\\") for line in lines[start : start + 2])
    command = command.replace("5001", str(port))
    result = subprocess.run(
        ["bash", "-c", command], env=project_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_served_model_answers_like_the_python_loader(swept_project, tmp_path):
    project, _ = swept_project
    run_id = trial_run_id(project)
    expected = json.loads(run([sys.executable, "-c", LOADER_LOGITS, run_id], cwd=project).stdout)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = serve_command(project, run_id, "--port", str(port))
    with started(command, tmp_path, tmp_path / "serve.log", base) as server:
        seconds = wait_for(server, "/ping", timeout=180)
        print(f"model server answered /ping after {seconds:.1f} s")
        assert f"runs:/{run_id}/model" in server.output()
        request = urllib.request.Request(
            f"{base}/invocations",
            data=json.dumps({"inputs": expected["images"]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = json.load(response)["predictions"]
        readme_output = run_readme_curl(project, port)
    assert len(predictions) == 16 and all(len(row) == 10 for row in predictions)
    if readme_output is not None:
        assert len(json.loads(readme_output)["predictions"]) == 1, readme_output
    served, loaded = np.asarray(predictions), np.asarray(expected["logits"])
    np.testing.assert_allclose(served, loaded, atol=1e-4)
    assert (served.argmax(axis=1) == loaded.argmax(axis=1)).all()  # the predicted digits


def test_unknown_run_id_stops_before_serving_with_a_list(swept_project, tmp_path):
    project, _ = swept_project
    result = run(
        serve_command(project, "0123456789abcdef", "--port", str(free_port())),
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "'0123456789abcdef' is no run id or run name in experiment 'model01'" in result.stderr
    assert trial_run_id(project) in result.stderr or "trial-" in result.stderr


def test_serving_outside_the_project_environment_says_poetry_run(installed_project, tmp_path):
    result = run_in_a_bare_environment(serve_command(installed_project, "best"), tmp_path)
    assert result.returncode == 1
    assert "poetry run bash scripts/serve_model.sh best" in result.stderr
