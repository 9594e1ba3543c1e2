"""Two projects installed (editable) in one environment: each entry point works on the
project it lives in, never on the one whose .pth file sorts first.

Project A is the session's installed project (mnist_experiments); project B is a second
bake whose slug sorts after A's, so that a bare `import src` finds A. B is installed with
--no-deps into the same environment for this module only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from conftest import SMALL_RUN, bake, run, write_mnist

pytestmark = pytest.mark.slow

SECOND_SLUG = "other_lab"  # sorts after mnist_experiments: A's .pth comes first
EXPERIMENT = "two_projects"


@pytest.fixture(scope="module")
def second_project(installed_project: Path, tmp_path_factory: pytest.TempPathFactory):
    """Project B, baked and installed beside A; uninstalled afterwards."""
    project = bake(tmp_path_factory.mktemp("second"), project_slug=SECOND_SLUG)
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation"]
    run([*install, "--no-deps", "-e", "."], cwd=project)
    try:
        # The premise: outside either folder, `import src` finds A.
        found = run([sys.executable, "-c", "import src; print(src.__path__[0])"], cwd=Path("/"))
        assert Path(found.stdout.strip()) == installed_project / "src"
        write_mnist(project, n_train=600, n_test=200)
        yield project
    finally:
        run([sys.executable, "-m", "pip", "uninstall", "--yes", SECOND_SLUG], cwd=project)


def store(project: Path):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{project / 'logs' / 'mlruns' / 'mlflow.db'}")


def runs_of(project: Path) -> list:
    if not (project / "logs" / "mlruns" / "mlflow.db").exists():
        return []
    experiment = store(project).get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return store(project).search_runs([experiment.experiment_id], max_results=100)


def study_names(project: Path) -> list[str]:
    import optuna

    if not (project / "logs" / "optuna.db").exists():
        return []
    storage = f"sqlite:///{project / 'logs' / 'optuna.db'}"
    return [s.study_name for s in optuna.get_all_study_summaries(storage)]


def test_training_and_a_sweep_log_into_their_own_project(
    installed_project, second_project, tmp_path
):
    a, b = installed_project, second_project
    # From another folder, by path, as a scheduler or a cron job would start it.
    train = [sys.executable, str(b / "src/model/model01/train.py"), f"experiment_name={EXPERIMENT}"]
    run([*train, *SMALL_RUN], cwd=tmp_path)
    sweep = ["poetry", "run", "python", "src/model/model01/train.py", "-m"]
    sweep += ["learning_rate=interval(0.001,0.002)", "hydra.sweeper.n_trials=1"]
    run([*sweep, f"experiment_name={EXPERIMENT}", *SMALL_RUN], cwd=b)

    names = sorted(r.info.run_name.split("-")[0] for r in runs_of(b))
    assert names == ["run", "sweep", "trial"]
    assert runs_of(a) == [], "project B's runs went into project A's store"
    assert [n for n in study_names(b) if n.startswith(f"{EXPERIMENT}-")]
    assert not [n for n in study_names(a) if n.startswith(f"{EXPERIMENT}-")]
    assert (b / "logs" / "logging_" / "model" / EXPERIMENT).is_dir()
    assert not (a / "logs" / "logging_" / "model" / EXPERIMENT).exists()


def test_stage_commands_work_on_their_own_project(installed_project, second_project):
    b = second_project
    for command in (
        ["src/dataset/dataset01/make_dataset.py", "download=false"],
        ["src/feature/feature01/make_features.py"],
    ):
        result = run(["poetry", "run", "python", *command], cwd=b)
        output = result.stdout + result.stderr
        assert str(b / "_data") in output, output[-2000:]
        assert str(installed_project) not in output


def test_commands_scripts_and_the_notebook_use_their_own_project(
    installed_project, second_project, tmp_path
):
    a, b = installed_project, second_project
    (trained,) = [r for r in runs_of(b) if r.info.run_name.startswith("run-")]
    run_id = trained.info.run_id

    # reproduce.sh: the re-run is a new run in B's store (B has no git: --force).
    result = run(["bash", "scripts/reproduce.sh", run_id, "--force"], cwd=b, check=False)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    assert [r for r in runs_of(b) if r.data.tags.get("reproduces") == run_id]

    # new_experiment.sh writes into B.
    a_had_model02 = (a / "src/model/model02").exists()
    run(["bash", "scripts/new_experiment.sh", "model", "model02"], cwd=b)
    assert (b / "src/model/model02/train.py").is_file()
    assert (a / "src/model/model02").exists() == a_had_model02

    # diary and export_runs read B's store.
    run(["poetry", "run", "python", "-m", "src.utils.commands.diary", EXPERIMENT], cwd=b)
    assert run_id in (b / "diary" / f"{EXPERIMENT}.md").read_text()
    assert not (a / "diary" / f"{EXPERIMENT}.md").exists()
    exported = f"sqlite:///{tmp_path / 'exported.db'}"
    command = ["poetry", "run", "python", "-m", "src.utils.commands.export_runs", EXPERIMENT]
    run([*command, "--to", exported], cwd=b)
    from mlflow import MlflowClient

    copies = MlflowClient(exported).search_runs(
        [MlflowClient(exported).get_experiment_by_name(EXPERIMENT).experiment_id]
    )
    assert run_id in {r.data.tags.get("exported_from.run_id") for r in copies}

    # The notebook, from notebooks/ and from the root: A has no such run.
    for cwd in (b / "notebooks", b):
        out = tmp_path / f"load_model_{cwd.name}.ipynb"
        command = [sys.executable, "-m", "papermill", str(b / "notebooks/load_model.ipynb")]
        command += [str(out), "-p", "experiment_name", EXPERIMENT, "-p", "run_id", run_id]
        run([*command, "--cwd", str(cwd), "--kernel", "python3"], cwd=cwd)
        assert "accuracy:" in out.read_text()


def test_a_script_that_imports_another_projects_src_stops_with_one_message(
    installed_project, second_project
):
    a, b = installed_project, second_project
    tools = b / "tools"
    tools.mkdir(exist_ok=True)
    (tools / "where.py").write_text(
        "from src.utils.paths import PROJECT_ROOT\nprint(PROJECT_ROOT)\n"
    )
    result = run([sys.executable, str(tools / "where.py")], cwd=b, check=False)
    assert result.returncode != 0 and result.stdout == ""
    message = result.stderr.strip()
    assert "Traceback" not in message
    assert re.search(rf"belongs to the project in {re.escape(str(b))}\b", message)
    assert f"found the project in {a}" in message
    assert "sys.path.insert" in message and f"PYTHONPATH={b}" in message
