"""A baked project follows the template with cruft: check, diff, update, conflicts.

Real cookiecutter, real cruft, real git: a git copy of this template gets commit A, a project
is baked from it, the user edits and commits, the template gets commit B, and the project
takes B with `cruft update`, as the generated README says.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import TEMPLATE_DIR, run

# cruft commits nothing itself, but the template copy and the hook's first commit need an
# identity on a machine without one.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Template Tester",
    "GIT_AUTHOR_EMAIL": "tester@example.com",
    "GIT_COMMITTER_NAME": "Template Tester",
    "GIT_COMMITTER_EMAIL": "tester@example.com",
}
PROJECT_DIR = "{{cookiecutter.project_slug}}"
CONFIG = "config/model/model01/config.yaml"


def sh(command: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(command, cwd=cwd, timeout=300, check=check, **GIT_IDENTITY)


def commit_all(repo: Path, message: str) -> str:
    sh(["git", "add", "--all"], repo)
    sh(["git", "commit", "--quiet", "--no-verify", "-m", message], repo)
    return sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()


def copy_template(target: Path) -> Path:
    """This template as it is on disk now (committed or not), without its git history."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=TEMPLATE_DIR,
        capture_output=True,
        text=True,
    )
    if listed.returncode == 0:
        for name in filter(None, listed.stdout.split("\0")):
            source = TEMPLATE_DIR / name
            if source.is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)
    else:
        shutil.copytree(
            TEMPLATE_DIR,
            target,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(".git", "__pycache__", ".*_cache"),
        )
    return target


@pytest.fixture
def template(tmp_path: Path) -> tuple[Path, str]:
    """A git copy of the template at its commit A."""
    repo = copy_template(tmp_path / "template")
    sh(["git", "init", "--quiet", "--initial-branch=main"], repo)
    return repo, commit_all(repo, "A")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def bake_with(tool: str, template: Path, out: Path, *answers: str) -> tuple[Path, str]:
    out.mkdir()
    if tool == "cookiecutter":
        # A relative template path, as in `cookiecutter ../my-template`.
        relative = Path("..") / template.relative_to(out.parent)
        command = ["cookiecutter", str(relative), "--no-input", *answers]
    else:
        command = ["cruft", "create", str(template), "--no-input"]
        if answers:
            extra = dict(a.split("=", 1) for a in answers)
            command += ["--extra-context", json.dumps(extra)]
    result = sh(command, out)
    return out / "mnist_experiments", result.stdout + result.stderr


def cruft(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The README's `poetry run cruft ...` (cruft comes with the project's dev group)."""
    return sh(["poetry", "run", "cruft", *args], project, check=check)


@pytest.mark.parametrize("tool", ["cookiecutter", "cruft"])
def test_update_brings_the_template_change_and_keeps_the_users_edits(tool, template, tmp_path):
    template_repo, commit_a = template
    project, output = bake_with(tool, template_repo, tmp_path / "projects")

    # .cruft.json: the template's git source, commit A and the answers, in the first commit.
    state = json.loads((project / ".cruft.json").read_text())
    assert state["template"] == str(template_repo) and state["commit"] == commit_a
    assert state["context"]["cookiecutter"]["project_slug"] == "mnist_experiments"
    first_commit = sh(["git", "show", "--name-only", "--format=", "HEAD"], project).stdout
    assert ".cruft.json" in first_commit.split()
    assert sh(["git", "status", "--porcelain"], project).stdout == ""
    assert "`cruft check` and `cruft update` follow the template" in output
    readme = (project / "README.md").read_text()
    for command in ("check", "diff", "update -y"):
        assert f"poetry run cruft {command} " in readme
    assert "up to date" in cruft(project, "check").stdout

    # The user's own work, committed.
    edit(project / CONFIG, "batch_size: 128 ", "batch_size: 64 ")
    (project / "diary" / "model01.md").write_text("# model01\n\nBaseline.\n")
    commit_all(project, "Smaller batches")
    assert "batch_size: 64" in cruft(project, "diff").stdout  # what differs from the template

    # Commit B of the template changes other files, one of them rendered by Jinja.
    edit(
        template_repo / PROJECT_DIR / "diary" / "README.md",
        "# ",
        "<!-- {{ cookiecutter.project_slug }}: template B -->\n# ",
    )
    edit(template_repo / PROJECT_DIR / "scripts" / "mlflow_ui.sh", "\ncd ", "\n# B\ncd ")
    commit_b = commit_all(template_repo, "B")

    outdated = cruft(project, "check", check=False)
    assert outdated.returncode == 1 and "out of date" in outdated.stdout

    updated = cruft(project, "update", "-y")
    assert "has been updated" in updated.stdout
    # The template's hook re-runs in cruft's scratch folders; its messages stay quiet there.
    assert "Next steps" not in updated.stdout + updated.stderr

    diary = (project / "diary" / "README.md").read_text()
    assert diary.startswith("<!-- mnist_experiments: template B -->\n# ")
    assert "\n# B\ncd " in (project / "scripts" / "mlflow_ui.sh").read_text()
    assert "batch_size: 64 " in (project / CONFIG).read_text()
    assert (project / "diary" / "model01.md").read_text() == "# model01\n\nBaseline.\n"
    assert json.loads((project / ".cruft.json").read_text())["commit"] == commit_b
    assert not list(project.rglob("*.rej"))
    # The scratch renders' git repository and .cruft.json (tool.cruft skip) never leak in.
    changed = sh(["git", "status", "--porcelain"], project).stdout.splitlines()
    assert sorted(line[3:] for line in changed) == [
        ".cruft.json",
        "diary/README.md",
        "scripts/mlflow_ui.sh",
    ]
    commit_all(project, "Update from the template")
    assert "up to date" in cruft(project, "check").stdout


def conflicting_change(template_repo: Path, project: Path, commit_user: bool) -> None:
    edit(project / CONFIG, "learning_rate: 0.001 ", "learning_rate: 0.005 ")
    if commit_user:
        commit_all(project, "My learning rate")
    edit(template_repo / PROJECT_DIR / CONFIG, "learning_rate: 0.001 ", "learning_rate: 0.002 ")
    edit(template_repo / PROJECT_DIR / "diary" / "_template.md", "# ", "<!-- B -->\n# ")
    commit_all(template_repo, "B: another default learning rate")


def test_a_conflict_in_a_git_project_is_marked_in_the_file(template, tmp_path):
    template_repo, _ = template
    project, _ = bake_with("cookiecutter", template_repo, tmp_path / "projects")
    conflicting_change(template_repo, project, commit_user=True)

    updated = cruft(project, "update", "-y")
    output = updated.stdout + updated.stderr
    assert f"Applied patch to '{CONFIG}' with conflicts." in output
    # git's three-way merge: both versions in the file, the file unmerged until resolved.
    text = (project / CONFIG).read_text()
    ours, theirs = r"learning_rate: 0\.005 .*", r"learning_rate: 0\.002 .*"
    assert re.search(rf"<<<<<<< ours\n{ours}\n=======\n{theirs}\n>>>>>>> theirs", text), text
    status = sh(["git", "status", "--porcelain"], project).stdout.splitlines()
    assert f"UU {CONFIG}" in status
    # The non-conflicting part of B went in.
    assert (project / "diary" / "_template.md").read_text().startswith("<!-- B -->\n")


def test_a_conflict_without_git_leaves_a_rej_file_and_the_users_value(template, tmp_path):
    template_repo, _ = template
    project, _ = bake_with("cookiecutter", template_repo, tmp_path / "projects", "init_git=no")
    assert not (project / ".git").exists() and (project / ".cruft.json").is_file()
    conflicting_change(template_repo, project, commit_user=False)

    updated = cruft(project, "update", "-y")
    assert "Project directory may have *.rej files" in updated.stdout + updated.stderr
    assert "learning_rate: 0.005 " in (project / CONFIG).read_text()
    rejected = (project / f"{CONFIG}.rej").read_text()
    assert "-learning_rate: 0.001 " in rejected and "+learning_rate: 0.002 " in rejected
    assert (project / "diary" / "_template.md").read_text().startswith("<!-- B -->\n")


def test_a_template_folder_without_git_says_updates_need_a_git_source(tmp_path):
    folder = copy_template(tmp_path / "template")
    project, output = bake_with("cookiecutter", folder, tmp_path / "projects")
    assert not (project / ".cruft.json").exists()
    assert "is a folder without git" in output
    assert "updates need a git source" in output
    link = next(line.strip() for line in output.splitlines() if "cruft link" in line)

    # The printed command links the project once the template is in git.
    sh(["git", "init", "--quiet", "--initial-branch=main"], folder)
    commit = commit_all(folder, "A")
    command = link.replace("<git URL or clone of the template>", str(folder))
    sh(["bash", "-c", command.replace("<commit>", commit)], project)
    state = json.loads((project / ".cruft.json").read_text())
    assert state["commit"] == commit
    assert state["context"]["cookiecutter"]["author_email"] == "you@example.com"
    assert "up to date" in cruft(project, "check").stdout
