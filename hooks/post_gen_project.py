"""Finish a freshly generated project: drop unchosen files, fix modes, record the template
source for cruft, git init, next steps.

Cookiecutter runs this inside the new project folder; the tests import it and call the
functions directly with a folder of their own.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
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


CRUFT_FILE = ".cruft.json"
# Keys cookiecutter adds to the context that `cruft create` does not record: paths of this
# machine and this bake. `_template` and `_commit` are what cruft itself records.
_BAKE_ONLY_KEYS = ("_output_dir", "_repo_dir", "_checkout")


def _git(args: list[str], cwd: Path) -> str | None:
    """`git <args>` in `cwd`: its stripped output, or None when git or the command fails."""
    git = shutil.which("git")
    if git is None or not cwd.is_dir():
        return None
    result = subprocess.run([git, *args], cwd=cwd, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def _template_folder(answers: dict[str, str]) -> Path | None:
    """The folder cookiecutter rendered from, as an absolute path, or None if not found."""
    raw = answers.get("_repo_dir") or answers.get("_template") or ""
    if not raw:
        return None
    path = Path(raw).expanduser()
    if path.is_absolute():
        return path if path.is_dir() else None
    # A relative path (`cookiecutter ../template`) is relative to the user's directory,
    # which the hook does not share: cookiecutter runs hooks from inside the template folder
    # (its own working directory) with the new project as theirs. Linux shows the parent's
    # directory under /proc; elsewhere the shell's PWD is the best guess.
    candidates = [Path(f"/proc/{os.getppid()}/cwd"), Path(os.environ.get("PWD", "")) / path]
    for candidate in candidates:
        try:
            candidate = candidate.resolve()
        except OSError:
            continue
        if (candidate / "cookiecutter.json").is_file():
            return candidate
    return None


def template_source(answers: dict[str, str]) -> dict[str, str | None]:
    """Where `cruft update` can fetch this template again: template, commit, directory.

    `problem` says why it cannot (no git); `warning` notes a template folder with
    uncommitted changes (the bake used them, the recorded commit does not have them).
    """
    source = {"template": None, "commit": None, "directory": None}
    if answers.get("_commit"):
        # `cruft create` (or cruft re-rendering during `update`/`diff`): cruft cloned the
        # template itself and knows both.
        return dict(source, template=answers["_template"], commit=answers["_commit"])
    template = str(answers.get("_template", ""))
    folder = _template_folder(answers)
    top = _git(["rev-parse", "--show-toplevel"], folder) if folder else None
    commit = _git(["rev-parse", "--verify", "HEAD"], folder) if folder else None
    if folder is None or top is None or commit is None:
        where = f"{template!r}" if folder is None else f"{str(folder)!r}"
        return dict(
            source,
            problem=f"the template source {where} is a folder without git (or a git "
            "repository without a commit)",
        )
    top_path = Path(top)
    directory = folder.resolve().relative_to(top_path.resolve()).as_posix()
    repo_dir = str(answers.get("_repo_dir") or template)
    # A local template is used in place (`_repo_dir` is the path given, plus --directory);
    # a remote one is cloned by cookiecutter, whose clone remembers the URL as `origin`.
    local = repo_dir == template or repo_dir.startswith(template.rstrip("/") + "/")
    url = str(top_path) if local else (_git(["remote", "get-url", "origin"], top_path) or template)
    source.update(template=url, commit=commit, directory=None if directory == "." else directory)
    if _git(["status", "--porcelain", "--", "."], folder):
        source["warning"] = (
            f"the template folder {str(folder)!r} has uncommitted changes; this project was "
            f"baked with them, but .cruft.json records the last commit {commit[:12]}"
        )
    return source


def cruft_state(answers: dict[str, str], source: dict[str, str | None]) -> dict:
    """The content of .cruft.json, as `cruft create` writes it."""
    context = {k: v for k, v in answers.items() if k not in _BAKE_ONLY_KEYS}
    context["_template"] = source["template"]
    context["_commit"] = source["commit"]
    return {
        "template": source["template"],
        "commit": source["commit"],
        "checkout": answers.get("_checkout"),
        "context": {"cookiecutter": context},
        "directory": source["directory"],
    }


def write_cruft_file(project_dir: Path, answers: dict[str, str]) -> str:
    """Write .cruft.json so `cruft check/diff/update` work; return what the user should know."""
    cruft_file = project_dir / CRUFT_FILE
    if cruft_file.exists():
        return ""
    source = template_source(answers)
    if source.get("problem"):
        public = {k: v for k, v in answers.items() if not k.startswith("_")}
        return (
            f"Template updates: {source['problem']}, so no {CRUFT_FILE} was written and "
            "`cruft update` cannot follow the template: updates need a git source (a git URL "
            "or a git clone of the template). To follow it later, link this project to the "
            "template's git repository at the commit it was baked from:\n"
            f"  cruft link <git URL or clone of the template> --no-input --checkout <commit> "
            f"--extra-context {shlex.quote(json.dumps(public, ensure_ascii=False))}"
        )
    # Byte for byte what cruft writes (cruft/_commands/utils/cruft.py: json_dumps), so
    # `cruft create` rewriting it after this hook leaves the first commit's copy unchanged.
    text = json.dumps(cruft_state(answers, source), ensure_ascii=False, indent=2)
    cruft_file.write_text(text + "\n", encoding="utf-8")
    message = (
        f"Recorded the template source in {CRUFT_FILE} ({source['template']} at "
        f"{source['commit'][:12]}): `cruft check` and `cruft update` follow the template."
    )
    if source.get("warning"):
        message += f"\nWarning: {source['warning']}."
    return message


def in_cruft_scratch_folder(answers: dict[str, str], project_dir: Path) -> bool:
    """True while `cruft update` or `cruft diff` re-render the template to compare it.

    They render into a fresh `tempfile.TemporaryDirectory` that holds nothing else; their
    user needs none of this hook's messages (the project was set up long ago).
    """
    if not answers.get("_commit"):
        return False
    parent = project_dir.resolve().parent
    return (
        parent.parent == Path(tempfile.gettempdir()).resolve()
        and parent.name.startswith("tmp")
        and [p.name for p in parent.iterdir()] == [project_dir.name]
    )


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
    # Before git init, so the first commit holds it.
    messages = [write_cruft_file(project_dir, answers), init_git(project_dir, answers)]
    messages.append(NEXT_STEPS.format(slug=answers["project_slug"]))
    if not in_cruft_scratch_folder(answers, project_dir):
        print("\n".join(m for m in messages if m))
    return 0


if __name__ == "__main__":
    # `jsonify` sorts the keys; .cruft.json keeps cookiecutter.json's order, as cruft does.
    answers = json.loads(r"""{{ cookiecutter | jsonify }}""")
    order = json.loads(r"""{{ cookiecutter.keys() | list | jsonify }}""")
    sys.exit(main({key: answers[key] for key in order}, Path(os.getcwd())))
