"""src/utils stays a map: no import circles, and dependencies point one way.

Experiments (src/dataset, src/feature, src/model) use src/utils; src/utils never imports
an experiment. Inside src/utils the sub-packages (tracking, sweep, training, stages,
commands) build on the top-level basics, and the basics import no sub-package.
"""

from __future__ import annotations

import ast
from pathlib import Path

from src.utils.paths import PROJECT_ROOT

SRC = PROJECT_ROOT / "src"
# Who may import whom, by the package a module sits in (src.utils.<top>).
ALLOWED = {
    "commands": {"commands", "tracking", "basics"},
    "sweep": {"sweep", "tracking", "basics"},
    "tracking": {"tracking", "stages", "basics"},
    "training": {"training", "basics"},
    "stages": {"stages", "basics"},
    "basics": {"basics"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("src"):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found.update(n for n in names if n in known)
            if node.module in known:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    return {name: project_imports(path, set(files)) for name, path in files.items()}


def utils_group(module: str) -> str | None:
    """'tracking' for src.utils.tracking.runs.x, 'basics' for src.utils.paths, else None."""
    parts = module.split(".")
    if parts[:2] != ["src", "utils"] or len(parts) < 3:
        return None
    return parts[2] if parts[2] in ALLOWED else "basics"


def test_no_import_circles():
    graph = import_graph()
    state: dict[str, int] = {}
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                circles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, f"import circles: {circles}"


def test_dependencies_point_one_way():
    wrong = []
    for module, targets in import_graph().items():
        group = utils_group(module)
        if group is None:
            continue
        for target in targets:
            target_group = utils_group(target)
            if target_group is None or target_group not in ALLOWED[group]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "src/utils imports against the direction: " + ", ".join(sorted(wrong))


def test_every_utils_package_says_what_it_holds():
    for init in (SRC / "utils").rglob("__init__.py"):
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert docstring, f"{init.relative_to(PROJECT_ROOT)} has no docstring"


def test_the_top_of_utils_stays_a_handful_of_basics():
    basics = [p.name for p in (SRC / "utils").glob("*.py") if p.name != "__init__.py"]
    assert len(basics) <= 6, f"group new infrastructure by job in a sub-package: {basics}"
