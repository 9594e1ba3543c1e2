"""Fixtures shared by the template's tests: baking, one installed project, one real sweep.

One project is baked with default answers, installed (editable) into the running
environment and swept once per session; the slow tests reuse it. Other bakes are only
inspected, except in test_two_projects: every project provides a top-level `src` package,
so a second project installed beside the first can take over a bare `import src` (the
project's own entry points are immune, other code is not); that module uninstalls it when
it is done.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
DEFAULT_SLUG = "mnist_experiments"
# The sweep that the README tells users to run, made small enough for CI.
SWEEP_COMMAND = [
    "poetry",
    "run",
    "python",
    "src/model/model01/train.py",
    "-m",
    "learning_rate=interval(0.001,0.002)",
]
SMALL_RUN = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=5",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.log_every_n_steps=1",
]


def bake(output_dir: Path, **answers: str) -> Path:
    """Run the real cookiecutter on this template; return the generated project folder."""
    return Path(
        cookiecutter(
            str(TEMPLATE_DIR), no_input=True, extra_context=answers, output_dir=str(output_dir)
        )
    )


def project_env(**extra: str) -> dict[str, str]:
    """The environment a user has after `poetry install` + `poetry run`: this venv active."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = sys.prefix
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run(
    command: list[str], cwd: Path, timeout: float = 600, check: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, cwd=cwd, env=project_env(**env), capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


def run_in_a_bare_environment(
    command: list[str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """`command` with only a bare virtual environment on PATH (no MLflow, no Optuna): what a
    user gets who forgot `poetry run`."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    return run(
        command,
        cwd=tmp_path,
        timeout=60,
        check=False,
        PATH=f"{bare / 'bin'}:/usr/bin:/bin",
        VIRTUAL_ENV=str(bare),
    )


def write_mnist(project: Path, data_dir: Path | None = None, **sizes: int) -> Path:
    """Write a small MNIST in the real IDX format with the project's own fixture writer."""
    data_dir = data_dir or project / "_data" / "data"
    args = ", ".join(f"{k}={v}" for k, v in sizes.items())
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, 'tests'); "
        "from mnist_idx_fixture import write_mnist_fixture; "
        f"print(write_mnist_fixture(Path({str(data_dir)!r}){', ' + args if args else ''}))"
    )
    return Path(run([sys.executable, "-c", code], cwd=project).stdout.strip())


def study_name_of(printed: str | subprocess.CompletedProcess[str]) -> str:
    """The study a sweep used, from the sweeper's `Study name: ...` line."""
    text = printed if isinstance(printed, str) else printed.stdout + printed.stderr
    match = re.search(r"Study name: (\S+)", text)
    assert match, f"the sweep did not print its study name:\n{text[-3000:]}"
    return match.group(1)


def sweep_runs(project: Path, study_name: str):
    """The MLflow client, experiment model01, and the parent and trial runs of one study
    (other tests add other studies to the same project)."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'logs' / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("model01")
    assert experiment is not None, "experiment model01 was not created"
    runs = client.search_runs(
        [experiment.experiment_id], f"tags.study_name = '{study_name}'", max_results=1000
    )
    parents = [r for r in runs if r.data.tags.get("run_kind") == "sweep"]
    trials = [r for r in runs if "trial_number" in r.data.tags]
    return client, experiment, parents, trials


@pytest.fixture(scope="session")
def installed_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default bake with git history, installed editable, with a small MNIST in place."""
    project = bake(tmp_path_factory.mktemp("installed"), init_git="yes")
    run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "-e", "."],
        cwd=project,
    )
    write_mnist(project, n_train=600, n_test=200)
    # The editable install reaches new processes; this one started before it, so tests that
    # unpickle the project's classes in-process (mlflow.pytorch.load_model) need the path.
    sys.path.insert(0, str(project))
    return project


@pytest.fixture(scope="session")
def swept_project(installed_project: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The project after the README's sweep command ran with 3 small trials."""
    result = run(SWEEP_COMMAND + ["hydra.sweeper.n_trials=3", *SMALL_RUN], cwd=installed_project)
    return installed_project, result
