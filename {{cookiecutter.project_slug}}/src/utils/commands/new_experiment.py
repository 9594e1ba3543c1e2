"""Start a new numbered experiment by copying the last one: code, config and a diary entry.

    bash scripts/new_experiment.sh model model02 [--from model01]

Only the standard library is used, so the script works before `poetry install` too.
"""

import argparse
import re
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ENTRY_POINTS = {"dataset": "make_dataset.py", "feature": "make_features.py", "model": "train.py"}
STAGES = tuple(ENTRY_POINTS)
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")


class ExperimentError(ValueError):
    """A request that cannot be carried out; nothing has been written."""


def existing_experiments(stage: str, root: Path = PROJECT_ROOT) -> list[str]:
    """The stage's experiment folders, ordered by their number (model01, model02, ...)."""
    folder = root / "src" / stage
    names = [p.name for p in folder.iterdir() if p.is_dir() and re.match(rf"^{stage}\d+", p.name)]
    return sorted(names, key=lambda name: (int(re.match(rf"^{stage}(\d+)", name).group(1)), name))


def validate(stage: str, new_name: str, source: str | None, root: Path = PROJECT_ROOT) -> str:
    """Check the request; return the source experiment's name. Raises ExperimentError."""
    if stage not in STAGES:
        raise ExperimentError(f"Unknown stage {stage!r}: use one of {', '.join(STAGES)}")
    if not re.fullmatch(stage + r"\d\d+[a-z0-9_]*", new_name):
        raise ExperimentError(
            f"Bad name {new_name!r}: a {stage} experiment is named {stage} + a number of at "
            f"least two digits (+ optional lowercase suffix), e.g. {stage}02 or {stage}03_wide"
        )
    existing = existing_experiments(stage, root)
    if not existing:
        raise ExperimentError(f"There is no {stage} experiment in src/{stage}/ to copy from")
    source = source or existing[-1]
    if source not in existing:
        raise ExperimentError(
            f"Unknown source {stage} experiment {source!r}: existing ones are {', '.join(existing)}"
        )
    folders = [root / top / stage / new_name for top in ("src", "config")]
    for taken in [*folders, root / "diary" / f"{new_name}.md"]:
        if taken.exists():
            raise ExperimentError(
                f"{new_name!r} already exists ({taken.relative_to(root)}): choose another name"
            )
    return source


def _rename_inside(folder: Path, old: str, new: str) -> None:
    """Rewrite the experiment's own name in its files: imports, config path, experiment name."""
    pattern = re.compile(rf"\b{re.escape(old)}\b")
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in (".py", ".yaml", ".yml", ".md", ".txt", ".json"):
            path.write_text(pattern.sub(new, path.read_text(encoding="utf-8")), encoding="utf-8")


def diary_entry(template: str, new_name: str, stage: str, source: str, today: date) -> str:
    """The diary template with the title, today's date and the parent experiment filled in."""
    lines = template.splitlines()
    for i, line in enumerate(lines):
        if i == 0 and line.startswith("# "):
            lines[i] = f"# {new_name}"
        elif "YYYY-MM-DD" in line:
            lines[i] = line.replace("YYYY-MM-DD", today.isoformat())
        elif line.startswith(("- Derived from:", "- 派生元:")):
            lines[i] = line.split(":", 1)[0] + f": {source} (src/{stage}/{source})"
    return "\n".join(lines) + "\n"


def create_experiment(
    stage: str,
    new_name: str,
    source: str | None = None,
    root: Path = PROJECT_ROOT,
    today: date | None = None,
) -> list[Path]:
    """Copy `source` (default: the highest-numbered) to `new_name`; return what was created.

    Everything is assembled in a scratch folder first and moved into place at the end, so
    a failure half-way leaves the project as it was.
    """
    source = validate(stage, new_name, source, root)
    diary = root / "diary" / f"{new_name}.md"
    template_file = root / "diary" / "_template.md"
    # A deleted template must not block a new experiment: fall back to the bare fields.
    template = (
        template_file.read_text(encoding="utf-8")
        if template_file.exists()
        else "# <name>\n\n- Date: YYYY-MM-DD\n- Derived from: <parent>\n"
    )
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        staged = {}
        for top in ("src", "config"):
            origin = root / top / stage / source
            if not origin.is_dir():
                continue
            copy = Path(scratch) / f"{top}-{new_name}"
            shutil.copytree(origin, copy, ignore=_IGNORED)
            _rename_inside(copy, source, new_name)
            staged[copy] = root / top / stage / new_name
        entry = diary_entry(template, new_name, stage, source, today or date.today())
        for copy, target in staged.items():
            copy.rename(target)
    diary.write_text(entry, encoding="utf-8")
    return [*staged.values(), diary]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bash scripts/new_experiment.sh",
        description="Copy the latest (or --from) experiment of a stage under a new name.",
    )
    parser.add_argument("stage", help=f"one of: {', '.join(STAGES)}")
    parser.add_argument("new_name", help="e.g. model02")
    parser.add_argument("--from", dest="source", help="experiment to copy (default: the latest)")
    args = parser.parse_args(argv)
    try:
        created = create_experiment(args.stage, args.new_name, args.source)
    except ExperimentError as error:
        print(f"error: {error}. Nothing was written.", file=sys.stderr)
        return 2
    for path in created:
        print(f"created {path.relative_to(PROJECT_ROOT)}")
    print(f"next: poetry run python src/{args.stage}/{args.new_name}/{ENTRY_POINTS[args.stage]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
