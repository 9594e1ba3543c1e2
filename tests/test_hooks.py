"""The hooks' functions, called directly, and bad answers refused through real cookiecutter."""

from __future__ import annotations

import importlib.util
import json
import stat
import subprocess

import pytest
from cookiecutter.exceptions import FailedHookException

from conftest import TEMPLATE_DIR, bake


def load_hook(name: str):
    spec = importlib.util.spec_from_file_location(name, TEMPLATE_DIR / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pre = load_hook("pre_gen_project")
post = load_hook("post_gen_project")

GOOD = {
    "project_slug": "digits_lab",
    "author_name": "A. Researcher",
    "author_email": "a.researcher@example.org",
    "python_version": "3.12",
    "license": "MIT",
    "readme_language": "en",
    "init_git": "no",
}


@pytest.mark.parametrize("slug", ["digits_lab", "mnist2", "a"])
def test_valid_slugs_pass(slug):
    assert pre.validate_slug(slug) is None


@pytest.mark.parametrize(
    ("slug", "expected"),
    [
        ("My-Project", "not a valid lowercase package name"),
        ("2fast", "not a valid lowercase package name"),
        ("has space", "not a valid lowercase package name"),
        ("ünïcode", "not a valid lowercase package name"),
        ("", "not a valid lowercase package name"),
        ("class", "is a Python keyword"),
        ("json", "would shadow the standard-library module 'json'"),
        ("logging", "would shadow the standard-library module 'logging'"),
        ("src", "would shadow the project's own top-level `src` package"),
    ],
)
def test_bad_slugs_are_refused_with_a_reason_and_a_suggestion(slug, expected):
    message = pre.validate_slug(slug)
    assert message is not None and expected in message
    assert "Try:" in message
    suggestion = message.rsplit("Try: ", 1)[1].strip("'")
    assert pre.validate_slug(suggestion) is None, f"the suggestion {suggestion!r} is itself refused"


@pytest.mark.parametrize("email", ["me@example.com", "first.last+ml@lab.example.co.jp"])
def test_valid_emails_pass(email):
    assert pre.validate_email(email) is None


@pytest.mark.parametrize(
    "email", ["me", "me@", "@example.com", "me@example", "a b@example.com", "a@b@c.com"]
)
def test_malformed_emails_are_refused(email):
    assert "is not an e-mail address" in pre.validate_email(email)


@pytest.mark.parametrize("version", ["3.11", "3.12", "3.13"])
def test_supported_python_versions_pass(version):
    assert pre.validate_python_version(version) is None


@pytest.mark.parametrize("version", ["3.10", "3.14", "3", "python3.11", ""])
def test_unsupported_python_versions_are_refused(version):
    assert "Type one of: 3.11, 3.12, 3.13" in pre.validate_python_version(version)


def test_validate_answers_lists_every_problem():
    answers = dict(
        GOOD, project_slug="import", author_email="nope", python_version="2.7", license="GPL"
    )
    errors = pre.validate_answers(answers)
    assert len(errors) == 4
    assert pre.validate_answers(GOOD) == []


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (
            {"project_slug": "Bad-Slug"},
            "project_slug 'Bad-Slug' is not a valid lowercase package name",
        ),
        ({"project_slug": "os"}, "would shadow the standard-library module 'os'"),
        ({"project_slug": "src"}, "would shadow the project's own"),
        ({"project_slug": "lambda"}, "is a Python keyword"),
        ({"author_email": "someone-at-example.com"}, "is not an e-mail address"),
        ({"python_version": "3.9"}, "python_version '3.9' is not supported"),
    ],
)
def test_cookiecutter_refuses_bad_answers_and_leaves_no_folder(tmp_path, capfd, answers, expected):
    with pytest.raises(FailedHookException):
        bake(tmp_path, **answers)
    captured = capfd.readouterr()
    assert expected in captured.err
    assert "Nothing was generated" in captured.err
    assert list(tmp_path.iterdir()) == [], "a refused bake must leave nothing behind"


def test_post_hook_drops_the_license_file_only_for_none(tmp_path):
    (tmp_path / "LICENSE").write_text("x")
    assert post.remove_unchosen_files(tmp_path, {"license": "MIT"}) == []
    assert (tmp_path / "LICENSE").exists()
    assert post.remove_unchosen_files(tmp_path, {"license": "none"}) == [tmp_path / "LICENSE"]
    assert not (tmp_path / "LICENSE").exists()


def test_post_hook_makes_scripts_executable(tmp_path):
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "run.sh"
    script.write_text("#!/bin/bash\n")
    script.chmod(0o644)
    assert post.make_scripts_executable(tmp_path) == [script]
    assert script.stat().st_mode & stat.S_IXUSR


def test_post_hook_git_init_commits_everything(tmp_path):
    (tmp_path / "README.md").write_text("hello\n")
    message = post.init_git(tmp_path, dict(GOOD, init_git="yes"))
    assert "Initialised a git repository" in message
    log = subprocess.run(
        ["git", "log", "--format=%an <%ae>|%s"], cwd=tmp_path, capture_output=True, text=True
    )
    assert log.stdout.count("\n") == 1
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=tmp_path, capture_output=True, text=True
    ).stdout
    assert tracked.split() == ["README.md"]


def test_post_hook_says_so_when_git_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    message = post.init_git(tmp_path, dict(GOOD, init_git="yes"))
    assert "git was not found on PATH" in message
    assert not (tmp_path / ".git").exists()


def test_post_hook_skips_git_when_not_asked(tmp_path):
    assert "Skipped git init" in post.init_git(tmp_path, GOOD)
    assert not (tmp_path / ".git").exists()


def test_post_hook_prints_the_next_steps(tmp_path, capsys):
    (tmp_path / "scripts").mkdir()
    post.main(dict(GOOD), tmp_path)
    out = capsys.readouterr().out
    for step in (
        "poetry install",
        "poetry run python src/model/model01/train.py -m 'learning_rate=interval(0.001,0.002)'",
        "bash scripts/mlflow_ui.sh",
        "bash scripts/optuna_dashboard.sh",
        "notebooks/load_model.ipynb",
    ):
        assert step in out
    assert "cd digits_lab" in out


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("MNIST Experiments", "mnist_experiments"),
        ("手書き 数字 Experiments", "experiments"),
        ("手書き数字", "project"),
        ("Digit-Lab v2", "digit_lab_v2"),
        ("2026 Study", "project_2026_study"),
        ("JSON", "json_project"),
        ("Class", "class_project"),
        ("Tom's Lab", "tom_s_lab"),
    ],
)
def test_the_default_slug_is_always_one_the_hook_accepts(name, slug):
    assert pre.suggest_slug(name) == slug
    assert pre.validate_slug(slug) is None


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("手書き 数字 Experiments", "experiments"),
        ("数字の実験", "project"),
        ("JSON", "json_project"),
    ],
)
def test_cookiecutter_derives_a_valid_default_slug_from_any_name(tmp_path, name, slug):
    # The default comes from cookiecutter.json's Jinja expression, through the real
    # cookiecutter and its pre-generation hook (which refused `手書き_数字_experiments`).
    project = bake(tmp_path, project_name=name, init_git="no")
    assert project.name == slug
    assert (project / "README.md").read_text(encoding="utf-8").startswith(f"# {name}\n")


def test_post_hook_keeps_a_cruft_file_that_is_already_there(tmp_path):
    (tmp_path / ".cruft.json").write_text('{"template": "mine"}\n')
    assert post.write_cruft_file(tmp_path, dict(GOOD, _template=str(TEMPLATE_DIR))) == ""
    assert (tmp_path / ".cruft.json").read_text() == '{"template": "mine"}\n'


def test_post_hook_records_crufts_own_source_under_cruft(tmp_path):
    answers = dict(GOOD, _template="https://example.com/t.git", _commit="a" * 40)
    assert "cruft update` follow the template" in post.write_cruft_file(tmp_path, answers)
    state = json.loads((tmp_path / ".cruft.json").read_text())
    assert (state["template"], state["commit"], state["directory"]) == (
        "https://example.com/t.git",
        "a" * 40,
        None,
    )
    assert state["context"]["cookiecutter"] == answers


def test_post_hook_without_a_git_template_writes_no_cruft_file_and_says_why(tmp_path):
    folder = tmp_path / "template"
    folder.mkdir()
    (folder / "cookiecutter.json").write_text("{}")
    project = tmp_path / "project"
    project.mkdir()
    answers = dict(GOOD, _template=str(folder), _repo_dir=str(folder), _output_dir=str(tmp_path))
    message = post.write_cruft_file(project, answers)
    assert "is a folder without git" in message and "updates need a git source" in message
    assert "cruft link" in message and '"author_email": "a.researcher@example.org"' in message
    assert not (project / ".cruft.json").exists()
