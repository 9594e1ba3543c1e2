"""The team server's login, for real: `scripts/mlflow_server.sh --auth` runs MLflow's
basic-auth app on a loopback port with its admin from an env file, `scripts/mlflow_users.sh`
adds users and grants permissions, and training and sweeps log in from the project's .env.
With PostgreSQL holding both the runs and the users, too. The refusals that need no
server are in test_server_commands."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest
from postgres_server import postgres_server_fixture  # noqa: F401 - the fixture
from server_process import free_port, http_status, started, wait_for

from conftest import SMALL_RUN, project_env, run

pytestmark = pytest.mark.slow

TRAIN = ["poetry", "run", "python", "src/model/model01/train.py"]
SWEEP = [*TRAIN, "-m", "learning_rate=interval(0.001,0.002)", *SMALL_RUN]
PASSWORDS = {name: f"{name}-{secrets.token_hex(8)}" for name in ("admin", "alice", "bob")}


@pytest.fixture(scope="module")
def server(installed_project, tmp_path_factory):
    folder = tmp_path_factory.mktemp("login_server")
    env_file = folder / "team.env"  # the admin's .env, on the server's machine
    env_file.write_text(f"MLFLOW_AUTH_ADMIN_PASSWORD='{PASSWORDS['admin']}'\n")
    port = free_port()
    command = ["bash", "scripts/mlflow_server.sh", "--auth", "--port", str(port), "--workers", "1"]
    command += ["--env-file", str(env_file), "--artifacts-destination", str(folder / "artifacts")]
    command += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    base = f"http://127.0.0.1:{port}"
    with started(command, installed_project, folder / "server.log", base) as server:
        print(f"login server answered after {wait_for(server, '/health', timeout=120):.1f} s")
        server.env_file = env_file  # type: ignore[attr-defined]
        yield server


def manage(server, project: Path, *args: str, password: str = "") -> subprocess.CompletedProcess:
    """scripts/mlflow_users.sh as the admin; a password comes on standard input."""
    return subprocess.run(
        ["bash", "scripts/mlflow_users.sh", *args, "--env-file", str(server.env_file)],
        cwd=project,
        input=password + "\n",
        capture_output=True,
        text=True,
        env=project_env(MLFLOW_TRACKING_URI=server.base_url),
        timeout=120,
    )


def test_the_login_keeps_out_strangers_and_read_only_users(server, installed_project):
    project = installed_project
    # Anonymous: nothing but the health check.
    assert http_status(f"{server.base_url}/api/2.0/mlflow/experiments/search?max_results=1") == 401
    assert http_status(f"{server.base_url}/health") == 200
    # Nothing secret on the server's command line or in its output; its files private.
    output = server.output()
    assert "login:         MLflow's, admin 'admin', new users may READ" in output
    command_line = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
    assert b"--app-name\x00basic-auth" in command_line
    assert PASSWORDS["admin"].encode() not in command_line and PASSWORDS["admin"] not in output
    for name in ("basic_auth.ini", "flask_secret_key"):
        assert (project / "logs" / "mlflow_server" / name).stat().st_mode & 0o077 == 0, name
    assert (server.log.parent / "basic_auth.db").is_file()  # beside the backend store

    # The admin (from the env file) adds two users and lets one of them write to model01.
    for name in ("alice", "bob"):
        added = manage(server, project, "add", name, password=PASSWORDS[name])
        assert added.returncode == 0, added.stderr
    granted = manage(server, project, "grant", "alice", "EDIT", "--experiment", "model01")
    assert granted.returncode == 0, granted.stderr
    short = manage(server, project, "password", "bob", password="short")
    assert short.returncode == 1
    assert "mlflow_users: error: INVALID_PARAMETER_VALUE: Password must be at least 12" in (
        short.stderr
    )

    env_file = project / ".env"
    assert not env_file.exists()
    env_file.write_text(
        f"MLFLOW_TRACKING_USERNAME=alice\nMLFLOW_TRACKING_PASSWORD='{PASSWORDS['alice']}'\n"
    )
    client = {"MLFLOW_TRACKING_URI": server.base_url}
    try:
        # Alice sweeps into model01, logged in from the project's .env.
        study = f"hydra.sweeper.study_name=login-{secrets.token_hex(4)}"  # a new one, each
        swept = run([*SWEEP, study + "a", "hydra.sweeper.n_trials=2"], cwd=project, **client)
        assert "Traceback" not in swept.stderr

        # Bob may only read model01: one message, before the first trial.
        bob = {"MLFLOW_TRACKING_USERNAME": "bob", "MLFLOW_TRACKING_PASSWORD": PASSWORDS["bob"]}
        bob_sweep = [*SWEEP, study + "b", "hydra.sweeper.n_trials=1"]
        refused = run(bob_sweep, project, check=False, **client, **bob)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        message = "error: User 'bob' has READ on experiment 'model01' at " + server.base_url
        assert (refused.stdout + refused.stderr).count(message) == 1
        assert "mlflow_users.sh grant bob EDIT --experiment model01" in refused.stderr
        assert "Traceback" not in refused.stdout + refused.stderr
        import optuna  # refused before its study is created: no empty study is left

        studies = optuna.get_all_study_names(f"sqlite:///{project / 'logs' / 'optuna.db'}")
        assert study.split("=")[1] + "a" in studies and study.split("=")[1] + "b" not in studies

        # A wrong password (the environment wins over .env): one message, nothing trained.
        wrong = {"MLFLOW_TRACKING_PASSWORD": "not-alices-password"}
        refused = run([*TRAIN, *SMALL_RUN], project, check=False, **client, **wrong)
        assert refused.returncode == 2
        assert refused.stderr.count("refused the login of 'alice' (wrong or changed password)") == 1
        assert "not-alices-password" not in refused.stdout + refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        env_file.unlink()

    from mlflow import MlflowClient

    store = MlflowClient(f"sqlite:///{server.log.parent / 'mlflow.db'}")
    runs = store.search_runs([store.get_experiment_by_name("model01").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3  # parent + 2 trials
    logged = json.dumps([(r.data.params, r.data.tags) for r in runs])
    assert not any(password in logged for password in PASSWORDS.values())

    # Searched by another process: reading the stores' files here and closing them would
    # drop this process's SQLite locks on them (POSIX locks are per process), and a later
    # test's sweep would then delete a write-ahead log that its open connections still read.
    folders = [str(project / folder) for folder in ("logs", "outputs", "multirun")]
    for name, password in PASSWORDS.items():
        found = subprocess.run(
            ["grep", "-rlaF", "--", password, *folders], capture_output=True, text=True
        )
        assert found.returncode == 1, f"{name}'s password is in {found.stdout}{found.stderr}"


def test_the_login_keeps_its_users_in_the_teams_postgres_database(
    installed_project, postgres_server, tmp_path
):
    """The team's setup (docker-compose.yml's): runs and users in one PostgreSQL database;
    a user with EDIT sweeps into it through the login, from worker processes too."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg (a project dependency) is missing")
    project = installed_project
    admin, carol = (f"{name}-{secrets.token_hex(8)}" for name in ("admin", "carol"))
    postgres_server.create_database("mlflow_login")
    env_file = tmp_path / "team.env"
    env_file.write_text(
        f"MLFLOW_AUTH_ADMIN_PASSWORD='{admin}'\nPOSTGRES_USER={postgres_server.user}\n"
        f"POSTGRES_PASSWORD='{postgres_server.password}'\nPOSTGRES_HOST={postgres_server.host}\n"
        f"POSTGRES_PORT={postgres_server.port}\nPOSTGRES_DB=mlflow_login\n"
    )
    port = free_port()
    command = ["bash", "scripts/mlflow_server.sh", "--auth", "--port", str(port), "--workers", "1"]
    command += ["--env-file", str(env_file), "--artifacts-destination", str(tmp_path / "artifacts")]
    base = f"http://127.0.0.1:{port}"
    with started(command, project, tmp_path / "server.log", base) as server:
        wait_for(server, "/health", timeout=120)
        server.env_file = env_file  # type: ignore[attr-defined]
        assert "backend store: postgresql+psycopg://mlflow:***@" in server.output()
        assert http_status(f"{base}/api/2.0/mlflow/experiments/search?max_results=1") == 401
        for args in (["add", "carol"], ["grant", "carol", "EDIT", "--experiment", "model01"]):
            done = manage(server, project, *args, password=carol)
            assert done.returncode == 0, done.stdout + done.stderr
        login = {"MLFLOW_TRACKING_USERNAME": "carol", "MLFLOW_TRACKING_PASSWORD": carol}
        # Trials in worker processes (joblib) log in as well.
        workers = ["hydra/launcher=joblib", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2"]
        workers.append(f"hydra.sweeper.study_name=login-{secrets.token_hex(4)}")  # a new one
        swept = run([*SWEEP, *workers], project, MLFLOW_TRACKING_URI=base, **login)
        assert "Joblib.Parallel(n_jobs=2" in swept.stdout + swept.stderr
    database = postgres_server.url("mlflow_login", driver="postgresql")
    with psycopg.connect(database) as connection:
        users = connection.execute("SELECT username FROM users ORDER BY username").fetchall()
        runs = connection.execute("SELECT status FROM runs").fetchall()
    assert users == [("admin",), ("carol",)] and runs == [("FINISHED",)] * 3  # parent, 2 trials
    settings = project / "logs" / "mlflow_server" / "basic_auth.ini"
    assert settings.stat().st_mode & 0o077 == 0  # it holds the database's password
