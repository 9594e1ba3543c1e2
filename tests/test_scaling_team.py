"""Scaling out beyond one process, for real: two sweep workers sharing one Optuna study in
PostgreSQL, the team tracking server (scripts/mlflow_server.sh on PostgreSQL), training,
loading and serving through it, and copying local runs to it (src.utils.commands.export_runs)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from postgres_server import postgres_server_fixture  # noqa: F401 - the fixture
from server_process import free_port, started, wait_for

from conftest import SMALL_RUN, project_env, run

pytestmark = pytest.mark.slow

TRAIN = ["poetry", "run", "python", "src/model/model01/train.py", "-m"]


@pytest.fixture(scope="module")
def psycopg():
    return pytest.importorskip(
        "psycopg", reason="psycopg (the PostgreSQL driver, a project dependency) is missing"
    )


def study_names(text: str) -> set[str]:
    return set(re.findall(r"Study name: (\S+)", text))


def test_two_workers_started_together_share_one_postgres_study(
    installed_project, postgres_server, psycopg, tmp_path
):
    import optuna
    from mlflow import MlflowClient

    project = installed_project
    storage = postgres_server.create_database("optuna_shared")
    command = [
        *TRAIN,
        "learning_rate=interval(0.0010,0.0016)",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.n_trials=4",
        *SMALL_RUN,
    ]
    logs = [tmp_path / f"worker{i}.log" for i in (1, 2)]
    start = time.monotonic()
    workers = []
    for log in logs:  # two terminals, one command
        with log.open("wb") as sink:
            workers.append(
                subprocess.Popen(
                    command, cwd=project, env=project_env(), stdout=sink, stderr=subprocess.STDOUT
                )
            )
    codes = [worker.wait(timeout=600) for worker in workers]
    elapsed = time.monotonic() - start
    outputs = [log.read_text(errors="replace") for log in logs]
    assert codes == [0, 0], "\n\n".join(o[-4000:] for o in outputs)
    names = study_names(outputs[0]) | study_names(outputs[1])
    assert len(names) == 1, f"the workers used different studies: {names}"
    name = names.pop()
    for output in outputs:
        assert postgres_server.password not in output, "the database password was printed"
        assert "database is locked" not in output.lower()

    study = optuna.load_study(study_name=name, storage=storage)
    # Both workers may count 3 trials and ask for the 4th at the same moment: the higher
    # number is then told FAIL, tagged surplus, and never runs.
    surplus = [t for t in study.trials if "surplus" in t.user_attrs]
    assert all(t.state == optuna.trial.TrialState.FAIL for t in surplus)
    trials = [t for t in study.trials if t not in surplus]
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    rates = [t.params["learning_rate"] for t in trials]
    assert len(set(rates)) == 4, "the workers proposed the same points"
    pids = {t.user_attrs["process.pid"] for t in trials}
    assert len(pids) == 2, "one worker ran every trial: the other did not join the study"

    client = MlflowClient(f"sqlite:///{project / 'logs' / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("model01")
    runs = client.search_runs([experiment.experiment_id], f"tags.study_name = '{name}'")
    parents = {r.info.run_id: r for r in runs if r.data.tags.get("run_kind") == "sweep"}
    logged = [r for r in runs if "trial_number" in r.data.tags]
    assert len(parents) == 2, "each worker has its own parent run"
    assert sorted(int(r.data.tags["trial_number"]) for r in logged) == [0, 1, 2, 3]
    for trial in trials:
        (run_,) = [r for r in logged if int(r.data.tags["trial_number"]) == trial.number]
        assert run_.info.status == "FINISHED"
        assert run_.data.metrics["val/acc"] == pytest.approx(trial.value)
        # Nested under the parent of the worker that ran it.
        parent = parents[run_.data.tags["mlflow.parentRunId"]]
        assert parent.data.tags["process.pid"] == trial.user_attrs["process.pid"]
        assert postgres_server.password not in json.dumps(run_.data.params)
        assert postgres_server.password not in json.dumps(run_.data.tags)
    print(f"shared study: 2 workers, 4 trials in {elapsed:.1f} s")


@pytest.fixture(scope="module")
def team_server(installed_project, postgres_server, psycopg, tmp_path_factory):
    """scripts/mlflow_server.sh on loopback: PostgreSQL backend, credentials from .env."""
    project = installed_project
    postgres_server.create_database("mlflow_team")
    artifacts = tmp_path_factory.mktemp("team_artifacts")
    env_file = project / ".env"
    assert not env_file.exists()
    env_file.write_text(
        "# written by the test\n"
        f"POSTGRES_USER={postgres_server.user}\n"
        f"POSTGRES_PASSWORD='{postgres_server.password}'\n"
        f"POSTGRES_HOST={postgres_server.host}\n"
        f"POSTGRES_PORT={postgres_server.port}\n"
        "POSTGRES_DB=mlflow_team\n"
    )
    port = free_port()
    log = tmp_path_factory.mktemp("team_server") / "server.log"
    command = ["bash", "scripts/mlflow_server.sh", "--port", str(port), "--workers", "1"]
    command += ["--artifacts-destination", str(artifacts)]
    base = f"http://127.0.0.1:{port}"
    try:
        with started(command, project, log, base) as server:
            seconds = wait_for(server, "/health", timeout=120)
            print(f"team server answered after {seconds:.1f} s")
            server.artifacts = artifacts  # type: ignore[attr-defined]
            yield server
    finally:
        env_file.unlink(missing_ok=True)


def test_server_script_keeps_the_password_off_the_command_line(team_server, postgres_server):
    output = team_server.output()
    assert "backend store: postgresql+psycopg://mlflow:***@127.0.0.1" in output
    assert postgres_server.password not in output
    command_line = Path(f"/proc/{team_server.process.pid}/cmdline").read_bytes()
    assert b"mlflow" in command_line and b"--serve-artifacts" in command_line
    assert postgres_server.password.encode() not in command_line


def test_sweep_through_the_server_lands_parent_trials_metrics_and_artifacts(
    team_server, installed_project
):
    from mlflow import MlflowClient

    project = installed_project
    result = run(
        [
            *TRAIN,
            "learning_rate=interval(0.0010,0.0015)",
            "hydra.sweeper.n_trials=2",
            *SMALL_RUN,
        ],
        cwd=project,
        MLFLOW_TRACKING_URI=team_server.base_url,
    )
    (name,) = study_names(result.stdout + result.stderr)
    client = MlflowClient(team_server.base_url)
    experiment = client.get_experiment_by_name("model01")
    # The server picks the artifact location: proxied, nothing under the project's logs/.
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    runs = client.search_runs([experiment.experiment_id], f"tags.study_name = '{name}'")
    parents = [r for r in runs if r.data.tags.get("run_kind") == "sweep"]
    trials = [r for r in runs if "trial_number" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.info.run_name for r in trials) == ["trial-000", "trial-001"]
    for trial in trials:
        assert trial.info.status == "FINISHED"
        assert trial.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert {"train/loss", "val/loss", "val/acc", "test/acc"} <= set(trial.data.metrics)
        assert len(client.get_metric_history(trial.info.run_id, "train/loss")) >= 3
        listed = {a.path for a in client.list_artifacts(trial.info.run_id)}
        assert {"config", "checkpoints", "plots"} <= listed
    assert parents[0].data.metrics["n_trials"] == 2
    summary = client.download_artifacts(parents[0].info.run_id, "study_summary.json")
    assert json.loads(Path(summary).read_text())["trial_counts"] == {"COMPLETE": 2}
    # The files really sit in the server's artifact destination.
    stored = {p.name for p in team_server.artifacts.rglob("*") if p.is_file()}
    assert {"best.ckpt", "config.yaml", "confusion_matrix.png", "MLmodel"} <= stored


def test_notebook_helper_and_serve_script_work_against_the_server(
    team_server, installed_project, tmp_path
):
    project = installed_project
    code = (
        "import torch; from src.utils.commands.model_loading import load_model, resolve_run; "
        "run = resolve_run('model01'); model = load_model('model01', run.info.run_id); "
        "print(run.info.run_id, tuple(model(torch.rand(2, 1, 28, 28)).shape))"
    )
    uri = team_server.base_url
    result = run([sys.executable, "-c", code], cwd=project, MLFLOW_TRACKING_URI=uri)
    run_id, shape = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert shape == "(2, 10)"

    port = free_port()
    command = ["bash", "scripts/serve_model.sh", run_id, "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with started(
        command, project, tmp_path / "serve.log", base, MLFLOW_TRACKING_URI=team_server.base_url
    ) as server:
        wait_for(server, "/ping", timeout=180)
        body = json.dumps({"inputs": [[[[0.0] * 28] * 28]]}).encode()
        request = urllib.request.Request(
            base + "/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = json.loads(response.read())["predictions"]
    assert len(predictions) == 1 and len(predictions[0]) == 10


def test_export_copies_local_runs_to_the_server_with_parents_remapped(
    team_server, installed_project
):
    from mlflow import MlflowClient

    project = installed_project
    local = MlflowClient(f"sqlite:///{project / 'logs' / 'mlruns' / 'mlflow.db'}")
    source = local.search_runs(
        [local.get_experiment_by_name("model01").experiment_id], max_results=1000
    )
    assert source, "the session's earlier sweeps left no local runs to copy"
    command = ["poetry", "run", "python", "-m", "src.utils.commands.export_runs", "model01"]
    result = run([*command, "--to", team_server.base_url], cwd=project)
    assert f"Copied {len(source)} run(s) of model01" in result.stdout

    server = MlflowClient(team_server.base_url)
    experiment = server.get_experiment_by_name("model01")
    copies = {
        r.data.tags["exported_from.run_id"]: r
        for r in server.search_runs(
            [experiment.experiment_id], "tags.`exported_from.run_id` != ''", max_results=1000
        )
    }
    assert set(copies) == {r.info.run_id for r in source}
    for original in source:
        copy = copies[original.info.run_id]
        assert copy.info.run_name == original.info.run_name
        assert copy.info.status == original.info.status
        assert copy.info.start_time == original.info.start_time
        assert copy.info.end_time == original.info.end_time
        assert copy.data.params == original.data.params
        assert copy.data.metrics == original.data.metrics
        parent = original.data.tags.get("mlflow.parentRunId")
        if parent:
            assert copy.data.tags["mlflow.parentRunId"] == copies[parent].info.run_id
        for key in ("study_name", "trial_number", "mlflow.source.git.commit"):
            assert copy.data.tags.get(key) == original.data.tags.get(key)
    trial = next(r for r in source if "trial_number" in r.data.tags and r.info.status == "FINISHED")
    copy = copies[trial.info.run_id]
    history = [(m.step, m.value) for m in local.get_metric_history(trial.info.run_id, "train/loss")]
    copied = [(m.step, m.value) for m in server.get_metric_history(copy.info.run_id, "train/loss")]
    assert copied == history
    assert sorted(a.path for a in server.list_artifacts(copy.info.run_id)) == sorted(
        a.path for a in local.list_artifacts(trial.info.run_id)
    )
    code = (
        "import mlflow.pytorch, torch; "
        f"m = mlflow.pytorch.load_model('runs:/{copy.info.run_id}/model'); "
        "print(tuple(m(torch.rand(1, 1, 28, 28)).shape))"
    )
    uri = team_server.base_url
    loaded = run([sys.executable, "-c", code], cwd=project, MLFLOW_TRACKING_URI=uri)
    assert loaded.stdout.strip().endswith("(1, 10)")

    again = run([*command, "--to", team_server.base_url], cwd=project)
    assert "Nothing to copy" in again.stdout


def test_server_script_names_a_missing_database_driver(installed_project, tmp_path):
    result = run(
        ["bash", "scripts/mlflow_server.sh", "--backend-store-uri", "mysql://u:secret@db/mlflow"],
        cwd=installed_project,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert "MySQLdb" in result.stderr and "pymysql" in result.stderr
    assert "secret" not in result.stderr


def test_docker_compose_file_is_valid_and_holds_no_credentials(installed_project, tmp_path):
    project = installed_project
    text = (project / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert set(services) == {"postgres", "minio", "minio-init", "mlflow"}
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in compose["volumes"], f"{name}: undeclared {volume}"
        for port in service.get("ports", []):
            assert re.fullmatch(r"(127\.0\.0\.1:)?\$\{\w+:-\d+\}:\d+|\d+:\d+", port), port
    mlflow = services["mlflow"]
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "--serve-artifacts" in mlflow["command"]
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://")
    assert mlflow["environment"]["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    # Credentials only as ${VARIABLES} from .env: no literal value in the file.
    secret_keys = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|_USER$")
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if secret_keys.search(key):
                assert re.fullmatch(r"\$\{\w+(:\?[^}]*)?\}", str(value)), f"{name}.{key}"
    assert "@postgres:5432" in mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert re.search(r"://\$\{POSTGRES_USER\}:\$\{POSTGRES_PASSWORD\}@", text)
    # Every variable the file requires is in .env.example, which holds placeholders only.
    example = (project / ".env.example").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required <= set(re.findall(r"^(\w+)=", example, re.M))
    assert ".env" in (project / ".gitignore").read_text().splitlines()
    docker = shutil.which("docker")
    has_compose = docker and subprocess.run([docker, "compose", "version"], capture_output=True)
    if has_compose and has_compose.returncode == 0:
        shutil.copy(project / ".env.example", tmp_path / ".env")
        checked = subprocess.run(
            [
                docker,
                "compose",
                "-f",
                str(project / "docker-compose.yml"),
                "--env-file",
                str(tmp_path / ".env"),
                "config",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            env=dict(os.environ),
        )
        assert checked.returncode == 0, checked.stderr
