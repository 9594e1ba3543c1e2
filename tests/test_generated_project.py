"""The baked project as a user gets it: the cookiecutter CLI, its own test suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import TEMPLATE_DIR, run


def test_cookiecutter_cli_bakes_and_prints_the_next_steps(tmp_path: Path):
    cookiecutter = Path(sys.executable).parent / "cookiecutter"
    result = subprocess.run(
        [str(cookiecutter), "--no-input", str(TEMPLATE_DIR), "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "mnist_experiments" / "src" / "model" / "model01" / "train.py").exists()
    assert "Initialised a git repository" in result.stdout
    assert "poetry install" in result.stdout


def test_the_baked_projects_own_tests_pass(installed_project: Path):
    result = run(["poetry", "run", "pytest", "-q", "-p", "no:cacheprovider"], cwd=installed_project)
    assert " passed" in result.stdout and "failed" not in result.stdout
