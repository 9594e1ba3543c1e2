"""scripts/optuna_dashboard.sh, for real: Optuna Dashboard on the swept project's study
storage over HTTP, on a PostgreSQL storage, and its refusals."""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.request
from pathlib import Path

import pytest
from postgres_server import postgres_server_fixture  # noqa: F401 - the fixture
from server_process import free_port, http_status, started, wait_for

from conftest import bake, run, run_in_a_bare_environment

# Python's threaded wsgiref server: ~4 s to the first 200 on 2 shared cores, nearly all of
# it importing Optuna; the limit leaves room for a loaded CI machine.
DASHBOARD_START_LIMIT_S = 12.0


def dashboard_command(project: Path, *args: str) -> list[str]:
    return ["bash", str(project / "scripts" / "optuna_dashboard.sh"), *args]


def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, dict(response.headers), response.read()


def get_json(url: str) -> dict:
    return json.loads(get(url)[2])


def study_storage(project: Path) -> str:
    return f"sqlite:///{project / 'logs' / 'optuna.db'}"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error:" in line]


@pytest.mark.slow
def test_dashboard_serves_the_sweep_study_from_any_directory(swept_project, tmp_path):
    import optuna

    project, _ = swept_project
    storage = study_storage(project)
    stored = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    sweep_study = next(name for name in stored if name.startswith("model01-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Started from an unrelated directory: the script finds logs/optuna.db from its own path.
    command = dashboard_command(project, "--port", str(port))
    with started(command, tmp_path, tmp_path / "dashboard.log", base) as dashboard:
        seconds = wait_for(dashboard, "/", timeout=60)
        print(f"Optuna Dashboard answered HTTP 200 after {seconds:.1f} s")
        assert seconds <= DASHBOARD_START_LIMIT_S, f"dashboard took {seconds:.1f} s to answer"

        listed = {s["study_name"]: s for s in get_json(f"{base}/api/studies")["study_summaries"]}
        assert set(listed) == set(stored)
        study_id = listed[sweep_study]["study_id"]
        assert listed[sweep_study]["directions"] == ["maximize"]  # val/acc

        detail = get_json(f"{base}/api/studies/{study_id}")
        study = optuna.load_study(study_name=sweep_study, storage=storage)
        assert [t["number"] for t in detail["trials"]] == [t.number for t in study.trials]
        assert len(detail["trials"]) >= 3
        for trial in detail["trials"]:
            assert [p["name"] for p in trial["params"]] == ["learning_rate"]
        assert detail["best_trials"][0]["number"] == study.best_trial.number

        # Offline: the page loads its one script from this server, and its Content Security
        # Policy keeps the browser from fetching or connecting anywhere else (no CDN).
        status, headers, page = get(f"{base}/dashboard/studies/{study_id}")
        assert status == 200
        assert b'<script defer src="/static/bundle.js"></script>' in page
        assert b"http://" not in page.replace(b"http://www.w3.org/2000/svg", b"")
        assert b"https://" not in page
        policy = headers["Content-Security-Policy"].split(";")
        assert "default-src 'self'" in policy and "connect-src 'self'" in policy
        assert any(p.startswith("script-src 'self'") and "http" not in p for p in policy)
        status, _, bundle = get(f"{base}/static/bundle.js", **{"Accept-Encoding": "gzip"})
        assert status == 200 and len(bundle) > 500_000

        output = dashboard.output()
        assert f"Optuna Dashboard: {base}  (Ctrl-C stops it)" in output
        n_trials = stored[sweep_study].n_trials
        assert f"{sweep_study} ({n_trials} trials): {base}/dashboard/studies/{study_id}" in output
        assert f"storage: {storage}" in output

        # A second dashboard on the same port stops at once and says what to do.
        second = run(
            dashboard_command(project, "--port", str(port)), cwd=tmp_path, timeout=60, check=False
        )
        assert second.returncode == 1
        assert error_lines(second.stderr) == [
            f"optuna_dashboard: error: port {port} on 127.0.0.1 is already in use "
            "(Address already in use)."
        ]
        assert f"--port {port + 1}" in second.stderr
        assert http_status(base + "/") == 200  # and the first one keeps running


def test_dashboard_names_the_studies_there_when_asked_for_a_missing_one(swept_project, tmp_path):
    import optuna

    project, _ = swept_project
    names = optuna.get_all_study_names(study_storage(project))
    result = run(
        dashboard_command(project, "--study", "model01-nosuchstudy", "--port", str(free_port())),
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert error_lines(result.stderr) == [
        "optuna_dashboard: error: no study named 'model01-nosuchstudy' in "
        f"{study_storage(project)}. Studies there:"
    ]
    for name in names:
        assert f"  {name} (" in result.stderr


def test_dashboard_with_study_prints_only_that_studys_link(swept_project, tmp_path):
    import optuna

    project, _ = swept_project
    storage = study_storage(project)
    name = next(n for n in optuna.get_all_study_names(storage) if n.startswith("model01-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = dashboard_command(project, "--study", name, "--port", str(port))
    with started(command, tmp_path, tmp_path / "dashboard.log", base) as dashboard:
        wait_for(dashboard, "/", timeout=60)
        links = [line for line in dashboard.output().splitlines() if "/dashboard/studies/" in line]
        assert len(links) == 1 and links[0].startswith(f"  {name} (")

        # Ctrl-C (SIGINT to the terminal's process group) stops it without a traceback.
        os.killpg(dashboard.process.pid, signal.SIGINT)
        assert dashboard.process.wait(timeout=15) == 130
        assert "Traceback" not in dashboard.output()


def test_dashboard_refuses_a_project_that_has_not_swept_yet(tmp_path):
    import optuna

    # A fresh bake, not installed: the script needs only its folder and this environment.
    project = bake(tmp_path / "bake", init_git="no")
    db = project / "logs" / "optuna.db"
    command = dashboard_command(project, "--port", str(free_port()))

    result = run(command, cwd=tmp_path, timeout=60, check=False)
    assert result.returncode == 1
    assert error_lines(result.stderr) == [
        f"optuna_dashboard: error: no Optuna study storage at {db} yet."
    ]
    assert "Run a sweep first: poetry run python src/model/model01/train.py -m" in result.stderr
    assert not db.exists()  # looking did not create an empty database

    # The storage exists (its tables made by Optuna) but holds no study yet.
    optuna.storages.RDBStorage(f"sqlite:///{db}")
    result = run(command, cwd=tmp_path, timeout=60, check=False)
    assert result.returncode == 1
    assert error_lines(result.stderr) == [
        f"optuna_dashboard: error: no study in sqlite:///{db} yet."
    ]

    # A file that is not an Optuna storage at all.
    other = tmp_path / "other.db"
    other.write_bytes(b"")
    result = run(
        dashboard_command(project, "--storage", f"sqlite:///{other}"),
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert error_lines(result.stderr) == [
        f"optuna_dashboard: error: {other} is not an Optuna study storage (no such table: studies)."
    ]

    result = run(dashboard_command(project, "--storage", "logs/optuna.db"), tmp_path, check=False)
    assert result.returncode == 1
    assert "error: --storage must be a database URL such as sqlite:////" in result.stderr


@pytest.mark.slow
def test_dashboard_on_all_interfaces_warns(swept_project, tmp_path):
    project, _ = swept_project
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = dashboard_command(project, "--host", "0.0.0.0", "--port", str(port))
    with started(command, tmp_path, tmp_path / "dashboard.log", base) as dashboard:
        wait_for(dashboard, "/", timeout=60)
        output = dashboard.output()
        assert "WARNING: --host 0.0.0.0 serves the dashboard to every machine" in output
        assert f"Optuna Dashboard: http://{socket.gethostname()}:{port}" in output


@pytest.mark.slow
def test_dashboard_on_a_postgres_storage_hides_its_password(postgres_server, tmp_path):
    pytest.importorskip("psycopg", reason="psycopg (the PostgreSQL driver) is missing")
    import optuna
    import sqlalchemy

    project = bake(tmp_path / "bake", init_git="no")
    url = postgres_server.create_database("optuna_dashboard")
    password = postgres_server.password
    shown = url.replace(password, "***")

    # An empty database: nothing to show, and looking did not create Optuna's tables.
    empty = run(dashboard_command(project, "--storage", url), tmp_path, check=False)
    assert empty.returncode == 1
    assert error_lines(empty.stderr) == [f"optuna_dashboard: error: no study in {shown} yet."]
    assert password not in empty.stderr + empty.stdout
    engine = sqlalchemy.create_engine(url)
    assert sqlalchemy.inspect(engine).get_table_names() == []
    engine.dispose()

    study = optuna.create_study(study_name="model01-shared", storage=url, direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("learning_rate", 0.001, 0.002), n_trials=2)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = dashboard_command(project, "--storage", url, "--port", str(port))
    with started(command, tmp_path, tmp_path / "dashboard.log", base) as dashboard:
        wait_for(dashboard, "/", timeout=60)
        listed = get_json(f"{base}/api/studies")["study_summaries"]
        assert [s["study_name"] for s in listed] == ["model01-shared"]
        output = dashboard.output()
        assert f"storage: {shown}" in output
        assert "model01-shared (2 trials): " in output
        assert password not in output

    wrong = url.replace(password, "not-the-password")
    refused = run(dashboard_command(project, "--storage", wrong), tmp_path, check=False)
    assert refused.returncode == 1
    assert "error: cannot read the Optuna studies in" in refused.stderr
    assert "not-the-password" not in refused.stderr


def test_dashboard_without_optuna_dashboard_installed_says_poetry_install(tmp_path):
    project = bake(tmp_path / "bake", init_git="no")
    result = run_in_a_bare_environment(dashboard_command(project), tmp_path)
    assert result.returncode == 1
    assert "Optuna Dashboard is not installed in the active Python environment" in result.stderr
    assert "poetry install" in result.stderr
    assert "poetry run bash scripts/optuna_dashboard.sh" in result.stderr
