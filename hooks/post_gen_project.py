"""Finish a freshly generated project: drop unchosen files, fix modes, git init, next steps.

Cookiecutter runs this inside the new project folder; the tests import it and call the
functions directly with a folder of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

NEXT_STEPS = """\
Next steps:
  cd {slug}
  poetry install
  poetry run python src/model/model01/train.py -m 'learning_rate=interval(0.001,0.002)'
  bash scripts/mlflow_ui.sh
  bash scripts/optuna_dashboard.sh
  # then open notebooks/load_model.ipynb to load a run's model and predict
"""


def remove_unchosen_files(project_dir: Path, answers: dict[str, str]) -> list[Path]:
    """Delete the files that belong to options the user did not choose."""
    removed = []
    if answers["license"] == "none":
        license_file = project_dir / "LICENSE"
        if license_file.exists():
            license_file.unlink()
            removed.append(license_file)
    return removed


def make_scripts_executable(project_dir: Path) -> list[Path]:
    """Give every scripts/*.sh the executable bits its reader already has."""
    scripts = sorted((project_dir / "scripts").glob("*.sh"))
    for script in scripts:
        mode = script.stat().st_mode
        script.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return scripts


def init_git(project_dir: Path, answers: dict[str, str]) -> str:
    """Run `git init` and a first commit; return what happened, for the user to read."""
    if answers["init_git"] != "yes":
        return "Skipped git init (init_git=no)."
    git = shutil.which("git")
    if git is None:
        return (
            "git was not found on PATH, so no repository was created. "
            "Install git, then run: git init"
        )
    # A machine without a configured identity still gets its first commit, under the
    # author given in the answers; a configured identity is left untouched.
    identity = []
    for key, value in (
        ("user.name", answers["author_name"]),
        ("user.email", answers["author_email"]),
    ):
        configured = subprocess.run(
            [git, "config", "--get", key], cwd=project_dir, capture_output=True, text=True
        )
        if configured.returncode != 0 or not configured.stdout.strip():
            identity += ["-c", f"{key}={value}"]
    steps = [
        [git, "init", "--quiet", "--initial-branch=main"],
        [git, "add", "--all"],
        [
            git,
            *identity,
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            "Initial commit from the ML experiment template",
        ],
    ]
    for step in steps:
        result = subprocess.run(step, cwd=project_dir, capture_output=True, text=True)
        if result.returncode != 0:
            return f"git step {' '.join(step[1:3])!r} failed: {result.stderr.strip()}"
    return "Initialised a git repository with a first commit on branch main."


def main(answers: dict[str, str], project_dir: Path) -> int:
    remove_unchosen_files(project_dir, answers)
    make_scripts_executable(project_dir)
    print(init_git(project_dir, answers))
    print(NEXT_STEPS.format(slug=answers["project_slug"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(r"""{{ cookiecutter | jsonify }}"""), Path(os.getcwd())))
