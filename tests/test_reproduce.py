"""scripts/reproduce.sh for real: a logged run re-run from its logged config, overrides,
seed and git commit, compared metric by metric; the environment each run logs.

The tests bake their own project with git history and put it on PYTHONPATH, so they can
commit and dirty its working tree without touching the session's installed project.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import SMALL_RUN, bake, run, write_mnist

pytestmark = pytest.mark.slow

DETERMINISTIC = [
    *SMALL_RUN,
    "trainer.accelerator=cpu",
    "trainer.deterministic=true",
    "mlflow.log_model=false",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = bake(tmp_path_factory.mktemp("reproduce"), init_git="yes")
    write_mnist(project, n_train=300, n_test=100)
    return project


def in_project(project: Path, command: list[str], check: bool = True):
    return run(command, cwd=project, check=check, PYTHONPATH=str(project))


def client_for(project: Path):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{project / 'logs' / 'mlruns' / 'mlflow.db'}")


def newest_run(project: Path, filter_string: str = ""):
    client = client_for(project)
    experiment = client.get_experiment_by_name("model01")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string,
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    assert runs, f"no run matches {filter_string!r}"
    return runs[0]


def reproduce(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return in_project(project, ["bash", "scripts/reproduce.sh", *args], check=False)


def test_a_deterministic_cpu_run_is_reproduced_identically(project):
    in_project(project, ["python", "src/model/model01/train.py", *DETERMINISTIC])
    original = newest_run(project)

    result = reproduce(project, original.info.run_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Reproduced: every metric within tolerance" in result.stdout
    assert "val/acc" in result.stdout and "DIFFERS" not in result.stdout

    rerun = newest_run(project, f"tags.reproduces = '{original.info.run_id}'")
    assert rerun.info.run_id != original.info.run_id
    assert rerun.info.status == "FINISHED"

    def computed(metrics: dict[str, float]) -> dict[str, float]:
        # system/* metrics sample the machine (CPU, memory), not the computation.
        return {k: v for k, v in metrics.items() if not k.startswith("system/")}

    assert computed(rerun.data.metrics) == computed(original.data.metrics)  # identical
    assert "system/cpu_utilization_percentage" in original.data.metrics
    assert rerun.data.params["seed"] == original.data.params["seed"]
    commit = "mlflow.source.git.commit"
    assert rerun.data.tags[commit] == original.data.tags[commit]


def test_each_run_logs_its_environment(project):
    import torch

    original = newest_run(project)
    tags = original.data.tags
    assert tags["env.torch"] == torch.__version__
    assert tags["env.python"].count(".") == 2
    assert "env.cuda" in tags and "env.packages_sha256" in tags
    assert tags["data.dataset_sha256"] and tags["data.feature_sha256"]
    client = client_for(project)
    packages = client.download_artifacts(
        original.info.run_id, "environment/requirements.txt", str(project / "outputs")
    )
    listed = Path(packages).read_text()
    assert "torch==" in listed and "mlflow==" in listed and "lightning==" in listed


def test_a_sweep_trial_reruns_outside_the_sweep_and_differences_fail(project):
    in_project(
        project,
        [
            "python",
            "src/model/model01/train.py",
            "-m",
            "learning_rate=interval(0.001,0.002)",
            "hydra.sweeper.n_trials=1",
            *DETERMINISTIC,
        ],
    )
    trial = newest_run(project, "tags.trial_number = '0'")
    client = client_for(project)
    # A logged value the re-run cannot match: the comparison must catch it.
    client.log_metric(trial.info.run_id, "val/acc", 0.123456, step=10_000)

    result = reproduce(project, trial.info.run_id)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "DIFFERS" in result.stdout and "0.123456" in result.stdout
    assert "NOT reproduced" in result.stderr

    rerun = newest_run(project, f"tags.reproduces = '{trial.info.run_id}'")
    assert "mlflow.parentRunId" not in rerun.data.tags, "the re-run is nested in the old sweep"
    assert "trial_number" not in rerun.data.tags and "study_name" not in rerun.data.tags
    assert rerun.data.params["learning_rate"] == trial.data.params["learning_rate"]
    assert rerun.data.params["sweep.trial_number"] == "None"


def test_refuses_when_the_code_differs_and_says_how_to_check_it_out(project):
    original = newest_run(project)
    run_id = original.info.run_id
    commit = original.data.tags["mlflow.source.git.commit"]
    readme = project / "README.md"
    text = readme.read_text()
    readme.write_text(text + "\nan uncommitted change\n")
    try:
        result = reproduce(project, run_id)
    finally:
        readme.write_text(text)
    assert result.returncode == 2
    assert "uncommitted changes" in result.stderr and "--force" in result.stderr

    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com"]
    in_project(project, [*git, "commit", "--allow-empty", "-q", "-m", "a later commit"])
    try:
        result = reproduce(project, run_id)
    finally:
        in_project(project, ["git", "reset", "-q", "--hard", commit])
    assert result.returncode == 2
    assert f"git checkout {commit}" in result.stderr

    result = reproduce(project, "0123456789abcdef0123456789abcdef")
    assert result.returncode == 2 and "No run" in result.stderr
