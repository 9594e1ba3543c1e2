"""scripts/mlflow_ui.sh, for real: the UI on the swept project's store, and its errors."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from server_process import free_port, http_status, started, wait_for

from conftest import bake, run, run_in_a_bare_environment

pytestmark = pytest.mark.slow

# One uvicorn worker and no job runner: ~4-7 s to the first 200 on 2 shared cores, where
# stock `mlflow ui` (4 workers) took 18 s. The limit leaves room for a loaded CI machine.
UI_START_LIMIT_S = 12.0


def ui_command(project: Path, *args: str) -> list[str]:
    return ["bash", str(project / "scripts" / "mlflow_ui.sh"), *args]


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_ui_serves_the_project_store_from_any_directory(swept_project, tmp_path):
    project, _ = swept_project
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Started from an unrelated directory: the script finds the store from its own path.
    with started(
        ui_command(project, "--port", str(port)), tmp_path, tmp_path / "ui.log", base
    ) as ui:
        seconds = wait_for(ui, "/", timeout=60)
        print(f"MLflow UI answered HTTP 200 after {seconds:.1f} s")
        assert seconds <= UI_START_LIMIT_S, f"UI took {seconds:.1f} s to answer"

        experiments = post_json(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 100})
        by_name = {e["name"]: e["experiment_id"] for e in experiments["experiments"]}
        assert "model01" in by_name
        runs = post_json(
            f"{base}/api/2.0/mlflow/runs/search",
            {"experiment_ids": [by_name["model01"]], "max_results": 1000},
        )["runs"]
        trials = [r for r in runs if r["info"]["run_name"].startswith("trial-")]
        assert len(trials) >= 3 and all(r["info"]["status"] == "FINISHED" for r in trials)
        # Artifacts are readable through the UI server too (config, checkpoint, plots).
        run_id = trials[0]["info"]["run_id"]
        with urllib.request.urlopen(
            f"{base}/api/2.0/mlflow/artifacts/list?run_id={run_id}", timeout=10
        ) as response:
            listed = {f["path"] for f in json.load(response)["files"]}
        assert {"config", "checkpoints", "plots"} <= listed

        # The printed links open the run table, not MLflow 3's GenAI overview.
        output = ui.output()
        assert (
            f"{base}/#/experiments/{by_name['model01']}/runs?workflowType=machine_learning"
            in output
        )
        assert "Security middleware enabled with default settings (localhost-only)" in output

        # A second UI on the same port stops at once and says what to do.
        second = run(
            ui_command(project, "--port", str(port)), cwd=tmp_path, timeout=60, check=False
        )
        assert second.returncode != 0
        assert f"port {port} on 127.0.0.1 is already in use" in second.stderr
        assert f"--port {port + 1}" in second.stderr
        assert http_status(base + "/") == 200  # and the first one keeps running


CHROMIUM = next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
)


def rendered_dom(url: str, profile: Path) -> str:
    """The page's DOM after its JavaScript ran, in a fresh headless Chromium profile."""
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1600,1000",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    return result.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian: apt-get install chromium)")
def test_the_printed_link_opens_the_run_table_sorted_with_metric_and_param_columns(
    swept_project, tmp_path
):
    project, _ = swept_project
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with started(
        ui_command(project, "--port", str(port)), tmp_path, tmp_path / "ui.log", base
    ) as ui:
        wait_for(ui, "/", timeout=60)
        link = re.search(r"model01 \(\d+ runs\): (\S+)", ui.output()).group(1)
        assert link.endswith("runs?workflowType=machine_learning&viewStateShareKey=best-runs")
        experiment_id = link.split("/experiments/")[1].split("/")[0]
        runs = post_json(
            f"{base}/api/2.0/mlflow/runs/search",
            {"experiment_ids": [experiment_id], "max_results": 1000},
        )["runs"]
        val_acc = {
            r["info"]["run_id"]: m["value"]
            for r in runs
            for m in r["data"].get("metrics", [])
            if m["key"] == "val/acc"
        }
        for attempt in range(3):  # a loaded machine may need longer than the time budget
            dom = rendered_dom(link, tmp_path / f"profile-{attempt}")
            if "metrics.`val/acc`" in dom:
                break
        (tmp_path / "run_table.html").write_text(dom)
    columns = set(re.findall(r'col-id="([^"]+)"', dom))
    # The optimized metric, the other scores and the searched parameter are columns ...
    assert {
        "metrics.`val/acc`",
        "metrics.`val/loss`",
        "metrics.`test/acc`",
        "metrics.`train/loss_epoch`",
        "params.`learning_rate`",
    } <= columns, sorted(columns)
    assert "You're viewing a shared view" in dom
    # ... and the rows come best first by val/acc (the optimized metric); AG Grid renders
    # each row once per pinned section, with its index and the run id.
    rows = dict(re.findall(r'row-index="(\d+)"[^>]*row-id="([0-9a-f]{32})"', dom))
    order = [rows[i] for i in sorted(rows, key=int)]
    scored = [run_id for run_id in order if run_id in val_acc]
    assert len(scored) >= 3, order
    assert [val_acc[r] for r in scored] == sorted((val_acc[r] for r in scored), reverse=True)
    # Runs without the metric (the sweep's parent run) come after the scored ones.
    assert order[: len(scored)] == scored


def test_ui_on_all_interfaces_warns_and_allows_only_this_machines_names(swept_project, tmp_path):
    project, _ = swept_project
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = ui_command(project, "--host", "0.0.0.0", "--port", str(port))
    with started(command, tmp_path, tmp_path / "ui.log", base) as ui:
        wait_for(ui, "/", timeout=60)
        output = ui.output()
        assert "WARNING: --host 0.0.0.0 serves the UI to every machine" in output
        assert "Allowed hosts:" in output  # MLflow's echo of the explicit --allowed-hosts
        assert http_status(base + "/", host_header=f"{socket.gethostname()}:{port}") == 200
        # DNS rebinding protection still on: a foreign Host header is refused.
        assert http_status(base + "/", host_header=f"evil.example:{port}") == 403


def test_ui_without_a_store_says_to_train_first(installed_project, tmp_path):
    # A fresh bake beside the installed one: its own `src` and no logs/mlruns/mlflow.db yet.
    project = bake(tmp_path / "bake", init_git="no")
    result = run(
        ui_command(project, "--port", str(free_port())), cwd=tmp_path, timeout=60, check=False
    )
    assert result.returncode == 1
    db = project / "logs" / "mlruns" / "mlflow.db"
    assert f"mlflow_ui: error: no MLflow store at {db} yet." in result.stderr
    assert "Run training first" in result.stderr
    assert not db.exists()


def test_ui_without_mlflow_in_the_environment_says_poetry_install(installed_project, tmp_path):
    result = run_in_a_bare_environment(ui_command(installed_project), tmp_path)
    assert result.returncode == 1
    assert "MLflow is not installed in the active Python environment" in result.stderr
    assert "poetry install" in result.stderr
    assert "poetry run bash scripts/mlflow_ui.sh" in result.stderr


def test_ui_points_at_a_tracking_server_instead_of_starting_one(installed_project, tmp_path):
    result = run(
        ui_command(installed_project),
        cwd=tmp_path,
        timeout=60,
        check=False,
        MLFLOW_TRACKING_URI="http://mlflow.example.com:5000",
    )
    assert result.returncode == 0
    assert (
        "MLFLOW_TRACKING_URI=http://mlflow.example.com:5000 is a tracking server" in result.stderr
    )
