"""Jinja filters for cookiecutter.json (loaded through its `_extensions` list).

`project_slug` derives the default slug with the pre-generation hook's own `suggest_slug`,
so a default is never one that the hook then refuses: a name in Japanese ("手書き 数字
Experiments") or one that names a standard-library module ("JSON") still gets a valid slug.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from cookiecutter.utils import simple_filter


@cache
def _pre_gen_hook():
    # The hook is the single source of the slug rules; cookiecutter runs it as a script,
    # so it is loaded from its file rather than imported as a package.
    path = Path(__file__).resolve().parent / "hooks" / "pre_gen_project.py"
    spec = importlib.util.spec_from_file_location("_template_pre_gen_project", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@simple_filter
def project_slug(project_name: str) -> str:
    return _pre_gen_hook().suggest_slug(project_name)
