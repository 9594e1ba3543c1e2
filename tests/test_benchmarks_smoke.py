"""benchmarks/run.py --quick: the benchmark script runs end to end and writes its figures.

Only a smoke test: the figures of a tiny run on a shared CI machine say nothing about
performance, so nothing here compares timings with targets (the README's table does).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from conftest import TEMPLATE_DIR, run

pytestmark = pytest.mark.slow

REQUIRED = ("overhead_ratio", "overhead_ratio_small", "startup_s", "per_trial_overhead_s")


def test_quick_benchmark_writes_positive_figures(tmp_path: Path):
    figures_file = tmp_path / "bench.json"
    # run() fails the test with the command's output if it exits non-zero.
    result = run(
        [sys.executable, "benchmarks/run.py", "--quick", "--json", str(figures_file)],
        cwd=TEMPLATE_DIR,
    )
    figures = json.loads(figures_file.read_text())
    for key in (*REQUIRED, "sweep_peak_rss_mb"):
        value = figures[key]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, (key, value)
    for key in ("store_creation_s", "log_metric_sync_s", "ui_script_first_200_s"):
        assert figures["mlflow"][key] > 0, key
    for arm in ("pruned", "unpruned"):  # the pruning part (`--parts search`)
        search = figures["search"][arm]
        assert search["wall_s"] > 0 and search["trials"] == 2, (arm, search)
        assert search["epochs_trained"] > 0, (arm, search)
        assert search["complete"] + search["pruned"] + search["failed"] == 2, (arm, search)
    assert figures["search"]["unpruned"]["pruned"] == 0, "pruner=null pruned a trial"
    assert math.isfinite(figures["search_wall_saved"])
    assert "| overhead ratio `overhead_ratio` |" in result.stdout
    assert "`search_wall_saved`" in result.stdout
    assert "Machine:" in result.stdout and "torch" in result.stdout
