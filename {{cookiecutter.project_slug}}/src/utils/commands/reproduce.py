"""Re-run a logged training run and compare its metrics: `bash scripts/reproduce.sh <run_id>`.

The same entry point, logged overrides and seed, as a new run tagged `reproduces=<run_id>`
outside the old run's sweep; refuses unless --force when the code may differ from the run's.
A metric differs when |logged - reproduced| > tolerance * max(1, |logged|); with
trainer.deterministic=true on CPU the metrics are identical.

Exit codes: 0 reproduced, 1 metrics differ, 2 refused or the run cannot be re-run.
"""

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from src.utils.commands.model_loading import client as _client
from src.utils.paths import PROJECT_ROOT
from src.utils.tracking.runs.tags import git_tags

DEFAULT_TOLERANCE = 1e-6
REPRODUCES_TAG = "reproduces"
# Overrides of the old run, not of its computation: a sweep's bookkeeping (the rerun must not
# nest in the old sweep) and an earlier reproduction's tag, with or without `+`/`++`.
_DROPPED_PREFIXES = ("sweep.", *(f"{plus}mlflow.tags.reproduces" for plus in ("", "+", "++")))
# Metrics of the machine, not of the computation (MLflow's system metrics): never compared.
_MACHINE_METRICS = ("system/",)
# Config keys whose logged and current values may differ without changing the result.
_IGNORED_KEYS = ("mlflow.tags", "sweep", "trainer.default_root_dir")


class Refused(RuntimeError):
    """The run cannot be reproduced faithfully from this working tree (exit code 2)."""


def logged_inputs(client: Any, run_id: str) -> tuple[Any, dict[str, Any], list[str]]:
    """The run, its logged resolved config and its overrides (sweep bookkeeping removed)."""
    from mlflow.exceptions import MlflowException
    from omegaconf import OmegaConf

    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        raise Refused(f"No run {run_id} in {client.tracking_uri}: {error.message}") from None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            folder = Path(client.download_artifacts(run_id, "config", tmp))
        except Exception as error:  # noqa: BLE001 - any store error means: not logged
            message = f"Run {run_id} has no logged config (config/ artifacts): {error}"
            raise Refused(message) from None
        config = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"))
        overrides_file = folder / "overrides.txt"
        if overrides_file.is_file():
            overrides = [line for line in overrides_file.read_text().splitlines() if line]
        else:
            overrides = run.data.tags.get("hydra.overrides", "").split()
    overrides = [o for o in overrides if not o.startswith(_DROPPED_PREFIXES)]
    return run, config, overrides


def check_code_version(tags: dict[str, str], force: bool) -> list[str]:
    """Problems with reproducing from this working tree; raises Refused unless `force`."""
    logged = tags.get("mlflow.source.git.commit")
    current = git_tags()
    now = current.get("mlflow.source.git.commit")
    problems = []
    if logged is None:
        problems.append("the run logged no git commit, so its code version is unknown")
    elif now is None:
        problems.append("this project is not a git repository, so its code cannot be checked")
    elif now != logged:
        problems.append(
            f"the working tree is at {now[:12]}, the run was made at {logged[:12]}. Check that "
            "commit out first:\n"
            "      git stash    # if you have changes\n"
            f"      git checkout {logged}\n"
            f"  or in a separate folder: git worktree add ../reproduce-{logged[:8]} {logged}"
        )
    if logged is not None and current.get("git_dirty") == "true":  # "true" only in a repository
        problems.append(
            "the working tree has uncommitted changes (git status); commit or `git stash` them"
        )
    if tags.get("git_dirty") == "true":
        problems.append(
            "the run itself was made from uncommitted changes, which git cannot restore"
        )
    if problems and not force:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise Refused(
            f"Refusing to reproduce: the code may differ from the run's.\n{listed}\n"
            "Re-run with --force to reproduce anyway."
        )
    return problems


def rerun(run: Any, overrides: list[str], seed: Any) -> str:
    """Run the logged entry point again as a new run tagged reproduces=<id>; its run id."""
    run_id = run.info.run_id
    entry_point = run.data.tags.get("mlflow.source.name", "src/model/model01/train.py")
    script = PROJECT_ROOT / entry_point
    if not script.is_file():
        raise Refused(f"The run's entry point {entry_point} does not exist in this project")
    arguments = [o for o in overrides if not o.lstrip("+").startswith("seed=")]
    if seed is not None:
        arguments.append(f"seed={seed}")
    arguments.append(f"++mlflow.tags.{REPRODUCES_TAG}={run_id}")
    # Never continue a `mlflow run` parent's run.
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_RUN_ID"}
    print(f"Reproducing run {run_id}: python {entry_point} {' '.join(arguments)}", flush=True)
    started_ms = int(time.time() * 1000)
    result = subprocess.run([sys.executable, str(script), *arguments], cwd=PROJECT_ROOT, env=env)
    if result.returncode != 0:
        raise Refused(f"The re-run exited with code {result.returncode}")
    client = _client()
    reruns = client.search_runs(
        _experiment_ids(client, run),
        f"tags.{REPRODUCES_TAG} = '{run_id}' and attributes.start_time >= {started_ms}",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not reruns:
        raise Refused("The re-run finished but its MLflow run was not found")
    return reruns[0].info.run_id


def _experiment_ids(client: Any, run: Any) -> list[str]:
    name = run.data.params.get("experiment_name")
    named = client.get_experiment_by_name(name) if name else None
    if named is None or named.experiment_id == run.info.experiment_id:
        return [run.info.experiment_id]
    return [run.info.experiment_id, named.experiment_id]


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_differences(logged: dict[str, Any], reproduced: dict[str, Any]) -> list[str]:
    a, b = _flat(logged), _flat(reproduced)
    return [
        f"{key}: logged {a.get(key)!r}, now {b.get(key)!r}"
        for key in sorted(set(a) | set(b))
        if not key.startswith(_IGNORED_KEYS) and a.get(key) != b.get(key)
    ]


def compare_metrics(
    logged: dict[str, float], reproduced: dict[str, float], tolerance: float
) -> tuple[list[tuple[str, float | None, float | None, float | None, bool]], bool]:
    rows = []
    for key in sorted(set(logged) | set(reproduced)):
        if key.startswith(_MACHINE_METRICS):
            continue
        a, b = logged.get(key), reproduced.get(key)
        if a is None or b is None:
            diff, ok = None, False
        elif math.isnan(a) and math.isnan(b):
            diff, ok = 0.0, True
        else:
            diff = abs(a - b)
            ok = diff <= tolerance * max(1.0, abs(a))
        rows.append((key, a, b, diff, ok))
    return rows, all(row[-1] for row in rows)


def format_table(rows: list[tuple[str, Any, Any, Any, bool]]) -> str:
    def shown(value: float | None) -> str:
        return "missing" if value is None else f"{value:.10g}"

    header = ("metric", "logged", "reproduced", "|difference|", "")
    lines = [
        (key, shown(a), shown(b), "" if d is None else f"{d:.3g}", "ok" if ok else "DIFFERS")
        for key, a, b, d, ok in rows
    ]
    widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *lines]
    )


def reproduce(run_id: str, force: bool = False, tolerance: float = DEFAULT_TOLERANCE) -> int:
    client = _client()
    run, config, overrides = logged_inputs(client, run_id)
    for problem in check_code_version(run.data.tags, force):
        print(f"WARNING (--force): {problem}", file=sys.stderr)
    new_id = rerun(run, overrides, config.get("seed"))
    _, new_config, _ = logged_inputs(client, new_id)
    for difference in config_differences(config, new_config):
        print(f"WARNING: config differs from the logged one: {difference}", file=sys.stderr)
    rows, ok = compare_metrics(run.data.metrics, client.get_run(new_id).data.metrics, tolerance)
    print(f"\nRun {run_id} (logged) vs {new_id} (reproduced), tolerance {tolerance:g}:")
    print(format_table(rows))
    if ok:
        print("Reproduced: every metric within tolerance.")
        return 0
    print(
        "NOT reproduced: metrics differ beyond the tolerance. On CPU, "
        "trainer.deterministic=true makes runs repeatable; GPUs may still differ slightly "
        "(raise --tolerance).",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/reproduce.sh",
        description="Re-run a logged MLflow training run and compare its metrics.",
    )
    parser.add_argument("run_id", help="the MLflow run id to reproduce")
    parser.add_argument(
        "--force",
        action="store_true",
        help="re-run even when the working tree differs from the run's git commit",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"allowed |difference| / max(1, |logged|) per metric (default {DEFAULT_TOLERANCE:g})",
    )
    args = parser.parse_args(argv)
    try:
        return reproduce(args.run_id, force=args.force, tolerance=args.tolerance)
    except Refused as refused:
        print(f"reproduce: {refused}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
