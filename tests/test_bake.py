"""Bake with default and non-default answers; check the exact output, its syntax and lint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import TEMPLATE_DIR, bake

# Every file a default bake produces (without .git/), cookiecutter-data-science style:
# a file added to or dropped from the template must be added or dropped here too.
EXPECTED_FILES = {
    ".cruft.json",
    ".env.example",
    ".gitignore",
    ".pre-commit-config.yaml",
    "LICENSE",
    "MLproject",
    "README.md",
    "docker-compose.yml",
    "pyproject.toml",
    "_data/data/.gitkeep",
    "_data/feature/.gitkeep",
    "config/dataset/dataset01/config.yaml",
    "config/feature/feature01/config.yaml",
    "config/model/model01/config.yaml",
    "config/model/model01/hydra/launcher/joblib.yaml",
    "config/model/model01/hydra/launcher/submitit_local.yaml",
    "config/model/model01/hydra/launcher/submitit_slurm.yaml",
    "config/model/model01/hydra/sweeper/pruner/hyperband.yaml",
    "config/model/model01/hydra/sweeper/pruner/median.yaml",
    "config/model/model01/hydra/sweeper/pruner/percentile.yaml",
    "config/model/model01/hydra/sweeper/pruner/successive_halving.yaml",
    "diary/README.md",
    "diary/_template.md",
    "logs/lightning/.gitkeep",
    "logs/logging_/dataset/.gitkeep",
    "logs/logging_/feature/.gitkeep",
    "logs/logging_/model/.gitkeep",
    "logs/mlruns/.gitkeep",
    "multirun/.gitkeep",
    "notebooks/load_model.ipynb",
    "notebooks/mlflow_tracking_tour.ipynb",
    "outputs/.gitkeep",
    "scripts/mlflow_server.sh",
    "scripts/mlflow_ui.sh",
    "scripts/mlflow_users.sh",
    "scripts/new_experiment.sh",
    "scripts/optuna_dashboard.sh",
    "scripts/reproduce.sh",
    "scripts/serve_model.sh",
    "src/__init__.py",
    "src/dataset/__init__.py",
    "src/dataset/dataset01/__init__.py",
    "src/dataset/dataset01/idx_format.py",
    "src/dataset/dataset01/make_dataset.py",
    "src/dataset/dataset01/mnist_dataset.py",
    "src/dataset/dataset01/mnist_files.py",
    "src/feature/__init__.py",
    "src/feature/feature01/__init__.py",
    "src/feature/feature01/make_features.py",
    "src/feature/feature01/mnist_datamodule.py",
    "src/feature/feature01/mnist_features.py",
    "src/model/__init__.py",
    "src/model/model01/__init__.py",
    "src/model/model01/config_schema.py",
    "src/model/model01/evaluation.py",
    "src/model/model01/image_classifier_models.py",
    "src/model/model01/train.py",
    "src/utils/__init__.py",
    "src/utils/commands/__init__.py",
    "src/utils/commands/diary.py",
    "src/utils/commands/export_runs.py",
    "src/utils/commands/model_loading.py",
    "src/utils/commands/new_experiment.py",
    "src/utils/commands/reproduce.py",
    "src/utils/commands/servers/__init__.py",
    "src/utils/commands/servers/common.py",
    "src/utils/commands/servers/mlflow_server.py",
    "src/utils/commands/servers/mlflow_ui.py",
    "src/utils/commands/servers/mlflow_users.py",
    "src/utils/commands/servers/optuna_dashboard.py",
    "src/utils/commands/servers/serve_model.py",
    "src/utils/console.py",
    "src/utils/hydra_resolvers.py",
    "src/utils/interrupts.py",
    "src/utils/paths.py",
    "src/utils/entry_point.py",
    "src/utils/stages/__init__.py",
    "src/utils/stages/config.py",
    "src/utils/stages/manifests.py",
    "src/utils/sweep/__init__.py",
    "src/utils/sweep/pruning.py",
    "src/utils/sweep/search_space.py",
    "src/utils/sweep/sweeper.py",
    "src/utils/sweep/trial_attrs.py",
    "src/utils/sweep/trial_configs.py",
    "src/utils/tracking/__init__.py",
    "src/utils/tracking/runs/__init__.py",
    "src/utils/tracking/store/__init__.py",
    "src/utils/tracking/runs/deferred_writes.py",
    "src/utils/tracking/runs/environment.py",
    "src/utils/sweep/history_plot.py",
    "src/utils/tracking/store/redaction.py",
    "src/utils/tracking/registry.py",
    "src/utils/tracking/runs/training_run.py",
    "src/utils/tracking/store/sqlite_wal.py",
    "src/utils/tracking/store/stale_runs.py",
    "src/utils/tracking/store/mlflow_store.py",
    "src/utils/sweep/parent_run.py",
    "src/utils/tracking/runs/system_metrics.py",
    "src/utils/tracking/runs/resume.py",
    "src/utils/tracking/runs/tags.py",
    "src/utils/training/__init__.py",
    "src/utils/training/checkpoint_io.py",
    "src/utils/training/distributed.py",
    "src/utils/training/guards.py",
    "src/utils/training/job.py",
    "src/utils/training/resume.py",
    "src/utils/training/settings.py",
    "src/utils/user_errors.py",
    "tests/conftest.py",
    "tests/mnist_idx_fixture.py",
    "tests/test_config.py",
    "tests/test_data.py",
    "tests/test_deferred_writes.py",
    "tests/test_interrupts.py",
    "tests/test_distributed.py",
    "tests/test_layout.py",
    "tests/test_entry_point.py",
    "tests/test_pruning.py",
    "tests/test_redaction.py",
    "tests/test_sweeper.py",
    "tests/test_tracking.py",
    "tests/test_training.py",
}
# A bake records its template source (.cruft.json) only when the template is in git, as in a
# clone that `.ci/run` runs from.
TEMPLATE_IN_GIT = (
    subprocess.run(["git", "rev-parse", "HEAD"], cwd=TEMPLATE_DIR, capture_output=True).returncode
    == 0
)
if not TEMPLATE_IN_GIT:
    EXPECTED_FILES.discard(".cruft.json")
# The folders of DESIGN.md §2 that must exist even when empty of code.
EXPECTED_DIRS = {
    "_data/data",
    "_data/feature",
    "config/dataset",
    "config/feature",
    "config/model",
    "diary",
    "logs/lightning",
    "logs/logging_/dataset",
    "logs/logging_/feature",
    "logs/logging_/model",
    "logs/mlruns",
    "notebooks",
    "scripts",
    "outputs",
    "multirun",
    "src/dataset/dataset01",
    "src/feature/feature01",
    "src/model/model01",
    "src/utils",
    "src/utils/commands",
    "src/utils/stages",
    "src/utils/sweep",
    "src/utils/tracking",
    "src/utils/tracking/runs",
    "src/utils/tracking/store",
    "src/utils/training",
}

NON_DEFAULT = {
    "project_name": "Handwriting Lab",
    "description": "Digits, but in Japanese",
    "author_name": "山田 花子",
    "author_email": "hanako@example.jp",
    "python_version": "3.13",
    "license": "none",
    "readme_language": "ja",
    "init_git": "no",
}


def files_of(project: Path) -> set[str]:
    return {
        p.relative_to(project).as_posix()
        for p in project.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(project).parts[:1]
    }


@pytest.fixture(scope="module")
def default_project(tmp_path_factory) -> Path:
    return bake(tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="module")
def other_project(tmp_path_factory) -> Path:
    return bake(tmp_path_factory.mktemp("other"), **NON_DEFAULT)


def test_default_bake_has_exactly_the_expected_files(default_project: Path):
    assert default_project.name == "mnist_experiments"
    assert files_of(default_project) == EXPECTED_FILES
    for folder in EXPECTED_DIRS:
        assert (default_project / folder).is_dir(), folder


def test_non_default_bake_drops_the_license_and_nothing_else(other_project: Path):
    assert other_project.name == "handwriting_lab"
    assert files_of(other_project) == EXPECTED_FILES - {"LICENSE"}
    assert not (other_project / ".git").exists()


@pytest.mark.parametrize("which", ["default_project", "other_project"])
def test_no_jinja_is_left_and_hydra_interpolations_survive(which, request):
    project = request.getfixturevalue(which)
    for name in files_of(project):
        text = (project / name).read_text(encoding="utf-8")
        assert "{{" not in text and "{%" not in text, f"Jinja left in {name}"
    config = (project / "config/model/model01/config.yaml").read_text()
    assert "${project_root:}" in config and "${optimized_metric}" in config


@pytest.mark.parametrize("which", ["default_project", "other_project"])
def test_every_structured_file_parses(which, request):
    project = request.getfixturevalue(which)
    for name in files_of(project):
        path = project / name
        if path.suffix == ".toml":
            tomllib.loads(path.read_text(encoding="utf-8"))
        elif path.suffix in (".yaml", ".yml"):
            yaml.safe_load(path.read_text(encoding="utf-8"))
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".ipynb":
            notebook = nbformat.read(path, as_version=4)
            nbformat.validate(notebook)
            assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")


@pytest.mark.parametrize("which", ["default_project", "other_project"])
def test_ruff_check_and_format_pass_on_the_baked_project(which, request):
    project = request.getfixturevalue(which)
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=project, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_poetry_check_passes(default_project: Path, other_project: Path):
    for project in (default_project, other_project):
        result = subprocess.run(
            [sys.executable, "-m", "poetry", "check"], cwd=project, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def _pip_index_url() -> str | None:
    """The index pip is configured to use here (a proxy, say), or None for PyPI itself."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".index-url") and not key.endswith("extra-index-url"):
            return value.strip("'\"")
    return None


# uv resolves from package metadata (PEP 658 files, or ranged reads of a wheel), never whole
# wheels: measured here, 195 packages in 3.4 s with 36 MB of index pages and metadata in its
# cache. Torch's CUDA wheels alone are GBs, so a cache beyond this means uv downloaded wheels.
UV_CACHE_LIMIT_MB = 300
UV_LOCK_TIMEOUT_S = 300


def test_uv_lock_accepts_the_project_and_its_dev_group(default_project: Path, tmp_path):
    """`uv sync` = `uv lock` + install: the lock half, on the same tables Poetry reads.

    (Installing would download CUDA torch builds, as `poetry install` would; the tests install
    with pip instead, DESIGN.md §6.)
    """
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed (pip install --group test installs it)")
    project = tmp_path / default_project.name
    shutil.copytree(default_project, project, ignore=shutil.ignore_patterns(".git"))
    cache = tmp_path / "uv-cache"
    env = dict(os.environ, UV_CACHE_DIR=str(cache), UV_NO_CONFIG="1")
    index = _pip_index_url()
    if index:
        env["UV_DEFAULT_INDEX"] = index
    started = time.monotonic()
    try:
        result = subprocess.run(
            [uv, "lock", "--project", str(project)],
            env=env,
            capture_output=True,
            text=True,
            timeout=UV_LOCK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"uv lock took over {UV_LOCK_TIMEOUT_S} s here (slow registry?)")
    seconds = time.monotonic() - started
    cached_mb = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 1e6
    print(f"uv lock: {seconds:.1f} s, {cached_mb:.0f} MB fetched, index {index or 'PyPI'}")
    if result.returncode != 0 and any(
        sign in result.stderr
        for sign in ("Failed to fetch", "dns error", "error sending request", "Could not connect")
    ):
        pytest.skip(f"uv cannot reach the registry {index or 'PyPI'}: {result.stderr[-500:]}")
    assert result.returncode == 0, result.stderr
    if cached_mb > UV_CACHE_LIMIT_MB:
        pytest.skip(f"uv downloaded {cached_mb:.0f} MB (wheels, not only metadata) to resolve")
    lock = tomllib.loads((project / "uv.lock").read_text())
    packages = {p["name"]: p for p in lock["package"]}
    assert {"torch", "lightning", "mlflow", "hydra-optuna-sweeper"} <= set(packages)
    assert packages["hydra-core"]["version"] == "1.4.0rc3"
    dev = {d["name"] for d in packages["mnist-experiments"]["dev-dependencies"]["dev"]}
    assert {"pytest", "ruff", "cruft", "papermill", "ipykernel"} <= dev


def test_every_answer_reaches_the_output(default_project: Path, other_project: Path):
    default = tomllib.loads((default_project / "pyproject.toml").read_text())["project"]
    other = tomllib.loads((other_project / "pyproject.toml").read_text())["project"]
    # project_name and description: README title and pyproject
    assert (default_project / "README.md").read_text().startswith("# MNIST Experiments\n")
    assert (other_project / "README.md").read_text().startswith("# Handwriting Lab\n")
    assert other["description"] == "Digits, but in Japanese"
    # project_slug: folder and distribution name
    assert default["name"] == "mnist_experiments" and other["name"] == "handwriting_lab"
    # author_name and author_email
    assert other["authors"] == [{"name": "山田 花子", "email": "hanako@example.jp"}]
    # python_version: requires-python and ruff's target
    assert default["requires-python"] == ">=3.11,<3.14"
    assert other["requires-python"] == ">=3.13,<3.14"
    ruff = tomllib.loads((other_project / "pyproject.toml").read_text())["tool"]["ruff"]
    assert ruff["target-version"] == "py313"
    # license: file and metadata
    assert default["license"] == "MIT"
    assert "MIT License" in (default_project / "LICENSE").read_text()
    assert "license" not in other
    # readme_language: README and diary template
    assert "## Layout" in (default_project / "README.md").read_text()
    assert "## ディレクトリ構成" in (other_project / "README.md").read_text()
    assert "## Hypothesis" in (default_project / "diary/_template.md").read_text()
    assert "## 仮説" in (other_project / "diary/_template.md").read_text()
    # init_git: a repository with one commit, or none
    log = subprocess.run(
        ["git", "log", "--oneline"], cwd=default_project, capture_output=True, text=True
    )
    assert len(log.stdout.splitlines()) == 1
    assert not (other_project / ".git").exists()


@pytest.mark.parametrize(
    ("license_id", "marker"),
    [
        ("MIT", "Permission is hereby granted, free of charge"),
        ("BSD-3-Clause", "Neither the name of the copyright holder"),
        ("Apache-2.0", "Apache License\n                           Version 2.0, January 2004"),
    ],
)
def test_each_license_renders_its_own_text(tmp_path, license_id, marker):
    project = bake(tmp_path, license=license_id, author_name="Ada Lovelace", init_git="no")
    text = (project / "LICENSE").read_text()
    assert marker in text
    assert "Ada Lovelace" in text
    assert text.endswith("\n") and not text.endswith("\n\n")
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert meta["license"] == license_id and meta["license-files"] == ["LICENSE"]


def test_python_312_answer(tmp_path):
    project = bake(tmp_path, python_version="3.12", init_git="no")
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    assert meta["project"]["requires-python"] == ">=3.12,<3.14"
    assert meta["tool"]["ruff"]["target-version"] == "py312"


def test_quotes_apostrophes_and_japanese_give_valid_toml_and_readme(tmp_path):
    name = 'Tom\'s "Quoted" 実験 \\ Lab'
    project = bake(
        tmp_path,
        project_name=name,
        project_slug="toms_lab",
        description='He said "hi" & left; 説明\\n',
        author_name='O\'Brien "Bob" 太郎',
        init_git="no",
    )
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert meta["description"] == 'He said "hi" & left; 説明\\n'
    assert meta["authors"][0]["name"] == 'O\'Brien "Bob" 太郎'
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert readme.startswith(f"# {name}\n")
    assert (
        "Copyright (c)" in (project / "LICENSE").read_text()
        and "O'Brien" in (project / "LICENSE").read_text()
    )


def test_dependency_lists_of_template_and_project_agree(default_project: Path):
    """The template's test environment installs what generated projects declare."""
    template = tomllib.loads((TEMPLATE_DIR / "pyproject.toml").read_text())
    project = tomllib.loads((default_project / "pyproject.toml").read_text())
    assert set(project["project"]["dependencies"]) <= set(template["dependency-groups"]["test"])


def test_gitignore_ignores_outputs_but_keeps_the_gitkeep_files(default_project: Path):
    probes = {
        "_data/data/MNIST/raw/train-images-idx3-ubyte": True,
        "_data/feature/feature01/train.pt": True,
        "logs/mlruns/mlflow.db": True,
        "logs/lightning/model01/x/best.ckpt": True,
        "outputs/model01/2026/.hydra/config.yaml": True,
        "multirun/model01/2026/0/train.log": True,
        ".env": True,
        "mlflow.db": True,
        "mlflow.db-wal": True,  # its write-ahead log (src/utils/tracking/store/sqlite_wal.py)
        "logs/mlruns/mlflow.db-shm": True,
        # The team server's login: its Flask key and its settings (scripts/mlflow_server.sh).
        "logs/mlflow_server/flask_secret_key": True,
        "logs/mlflow_server/basic_auth.ini": True,
        "_data/data/.gitkeep": False,
        "logs/mlruns/.gitkeep": False,
        "src/model/model01/train.py": False,
    }
    for path, ignored in probes.items():
        result = subprocess.run(
            ["git", "check-ignore", "--no-index", "-q", path], cwd=default_project
        )
        assert (result.returncode == 0) == ignored, path
