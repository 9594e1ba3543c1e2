"""The server commands' shared refusals (src/utils/commands/servers/common.py), through
scripts/*.sh and `python -m`: each a single line saying what to change, before any server
starts. The servers themselves are started in test_mlflow_ui, test_optuna_dashboard,
test_model_serving and test_scaling_team."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from server_process import free_port

from conftest import bake, run

SERVERS = ["mlflow_ui", "mlflow_server", "optuna_dashboard", "serve_model"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh bake, not installed: the scripts import its own `src`."""
    return bake(tmp_path_factory.mktemp("servers"), init_git="no")


def script(project: Path, name: str, *args: str, **env: str):
    return run(["bash", f"scripts/{name}.sh", *args], cwd=project, timeout=60, check=False, **env)


@pytest.mark.parametrize("name", SERVERS)
def test_a_bad_port_is_named_with_what_was_given(project, name):
    for given in ("abc", "0", "70000"):
        result = script(project, name, "--port", given)
        assert result.returncode == 2
        assert (
            f"{name}: error: argument --port/-p: want a number from 1 to 65535, got '{given}'"
            in result.stderr
        )
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["mlflow_server", "optuna_dashboard"])
def test_a_busy_port_and_an_unknown_host_stop_before_the_server_starts(project, tmp_path, name):
    args = []
    if name == "optuna_dashboard":  # it checks its storage first: give it one with a study
        import optuna

        storage = f"sqlite:///{tmp_path / 'optuna.db'}"
        optuna.create_study(study_name="s", storage=storage)
        args = ["--storage", storage]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = script(project, name, *args, "--port", str(port))
    assert busy.returncode == 1
    assert f"{name}: error: port {port} on 127.0.0.1 is already in use" in busy.stderr
    assert f"Pick a free port: --port {port + 1}" in busy.stderr
    args += ["--no-auth"] * (name == "mlflow_server")  # a public host would need the login
    unknown = script(project, name, *args, "--host", "no-such-host.invalid")
    assert unknown.returncode == 1
    assert f"{name}: error: cannot listen on no-such-host.invalid:" in unknown.stderr


def test_python_m_runs_the_same_command_as_the_script(project):
    module = "src.utils.commands.servers.optuna_dashboard"
    result = run([sys.executable, "-m", module, "--port", "x"], cwd=project, check=False)
    assert result.returncode == 2
    assert "optuna_dashboard: error: argument --port/-p" in result.stderr
    assert "--study NAME checks it" in script(project, "optuna_dashboard", "--help").stdout


def test_the_server_names_each_missing_setting_and_never_the_password(project, tmp_path):
    env_file = tmp_path / "team.env"
    env_file.write_text("POSTGRES_USER=mlflow\n")
    result = script(project, "mlflow_server", "--env-file", str(env_file))
    assert result.returncode == 1
    assert "POSTGRES_USER is set but POSTGRES_PASSWORD is not (.env)" in result.stderr

    env_file.write_text("# a comment\nexport OK='quoted'\nnot a setting\nPOSTGRES_USER=u\n")
    result = script(project, "mlflow_server", "--env-file", str(env_file))
    assert "could not parse statement starting at line 3" in result.stderr
    assert "POSTGRES_USER is set but POSTGRES_PASSWORD is not" in result.stderr  # read on

    result = script(project, "mlflow_server", "--env-file", str(tmp_path / "missing.env"))
    assert f"mlflow_server: error: no env file at {tmp_path / 'missing.env'}" in result.stderr

    result = script(project, "mlflow_server", "--workers", "0")
    assert "argument --workers/-w: want a number from 1 to 1000, got '0'" in result.stderr

    result = script(project, "mlflow_server", "--backend-store-uri", "oracle://u:pw1@db/x")
    assert "--backend-store-uri oracle://u:***@db/x: use postgresql+psycopg://" in result.stderr
    assert "pw1" not in result.stderr

    s3 = ["--artifacts-destination", "s3://bucket/mlflow", "--port", str(free_port())]
    result = script(project, "mlflow_server", *s3, AWS_ACCESS_KEY_ID="minio")
    assert result.returncode == 1
    assert "an s3:// artifact destination needs AWS_SECRET_ACCESS_KEY" in result.stderr


def test_the_ui_and_the_model_server_refuse_a_missing_sqlite_store(project, tmp_path):
    missing = tmp_path / "nowhere" / "mlflow.db"
    for name in ("mlflow_ui", "serve_model"):
        result = script(project, name, MLFLOW_TRACKING_URI=f"sqlite:///{missing}")
        assert result.returncode == 1
        assert f"{name}: error: no MLflow store at {missing} yet." in result.stderr
        assert not missing.parent.exists()


def test_every_script_is_a_thin_wrapper(project):
    for path in (project / "scripts").glob("*.sh"):
        lines = path.read_text().splitlines()
        assert len(lines) <= 30, f"{path.name} has {len(lines)} lines"
        assert lines[-1].startswith('exec "$(command -v python || echo python3)" -m src.utils.'), (
            path.name
        )


def test_the_login_refuses_no_default_or_short_admin_password(project, tmp_path):
    """--auth, or a public --host without --no-auth: MLflow's login, whose admin comes from
    .env; each refusal is one message naming what to set, before anything is written."""
    env_file = tmp_path / "team.env"
    cases = {
        "": ("--host", "0.0.0.0"),
        "password1234": ("--auth",),
        "short": ("--auth",),
    }
    problems = ["is not set", "is MLflow's published default", "is shorter than 12 characters"]
    for (password, args), problem in zip(cases.items(), problems, strict=True):
        env_file.write_text(f"MLFLOW_AUTH_ADMIN_PASSWORD={password}\n")
        result = script(project, "mlflow_server", *args, "--env-file", str(env_file))
        assert result.returncode == 1, result.stderr
        admin = "mlflow_server: error: the login's admin 'admin'"
        assert result.stderr.startswith(f"{admin}: MLFLOW_AUTH_ADMIN_PASSWORD {problem}.")
        assert "--no-auth" in result.stderr and "Traceback" not in result.stderr
    with socket.socket() as taken:  # --no-auth: the warning, then a busy port stops it
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        args = ["--host", "0.0.0.0", "--no-auth", "--port", port, "--env-file", str(env_file)]
        open_bind = script(project, "mlflow_server", *args)
    assert "WARNING: --host 0.0.0.0 serves the server to every machine" in open_bind.stderr
    assert "with no login: anyone who can connect can read and delete every run" in (
        open_bind.stderr
    )
    assert f"port {port} on 0.0.0.0 is already in use" in open_bind.stderr
    env_file.write_text("MLFLOW_AUTH_ADMIN_PASSWORD=long-enough-password\n")
    bad = script(project, "mlflow_server", "--auth", "--env-file", str(env_file),
                 MLFLOW_AUTH_DEFAULT_PERMISSION="ALL")  # fmt: skip
    assert "MLFLOW_AUTH_DEFAULT_PERMISSION=ALL: not one of (" in bad.stderr
    assert not (project / "logs" / "mlflow_server" / "flask_secret_key").exists()
