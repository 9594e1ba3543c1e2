"""Benchmark a freshly baked project against bare PyTorch; print a table (and --json).

    python benchmarks/run.py                     # the full benchmark (~10 min on 2 cores)
    python benchmarks/run.py --quick             # a tiny smoke run for CI (< 2 min)
    python benchmarks/run.py --json bench.json   # also write the figures

Run it with the Python environment the project's tests use (torch, Lightning, MLflow,
Hydra, Optuna, cookiecutter installed). It bakes the template into a temporary folder,
writes a synthetic MNIST with the project's own `tests/mnist_idx_fixture.py` and measures,
in one run on one machine:

1. Training overhead: wall time per epoch of the project's `train.py` (Hydra, Lightning,
   MLFlowLogger into SQLite, the default config's callbacks and logging; the fit including
   its sanity check, checkpoints and validation) against a bare PyTorch loop with the same
   DigitCNN, in-memory tensors, batch size, epochs, validation pass and thread count, at
   ~1,500 and ~10,000 training images. Medians of several repeats, interleaved.
2. A 5-trial Optuna sweep: start-up (process start to the first trial's fit), next to the
   time a process takes only to import the stack (the part of start-up no project code
   can remove), and the overhead per trial, (sweep wall - start-up - sum of fit walls) /
   trials; the same from a second sweep with twice the trials, as a difference of the two
   (the marginal cost of one more trial, without the sweep's one-time costs).
3. MLflow: store creation, cost per logged metric value (sync and async), and time to the
   first HTTP 200 of `scripts/mlflow_ui.sh` and of stock `mlflow ui`.
4. Peak RSS of the sweep process.
5. Pruning (`--parts search`): the same seeded sweep over a space with bad regions
   (learning rates over five decades, dropout up to 0.7), several epochs per trial, run
   once with the project's default pruner and once with `hydra.sweeper.pruner=null`:
   wall time, epochs trained and best value of each, and the wall time saved.

The project goes on PYTHONPATH instead of being pip-installed (same import path as an
editable install), so the benchmark never replaces a project installed in this
environment; `--install` pip-installs it editable instead. Fit walls come from
`lightning.Trainer.fit`, wrapped by the child process (`_child.py`), not from the project.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).resolve().with_name("_child.py")
TRAIN = "src/model/model01/train.py"
BATCH_SIZE = 128  # the default config's


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, int]  # training images: small, large
    n_test: int
    epochs: int
    repeats_small: int
    repeats_large: int
    sweep_trials: int
    more_trials: int  # a second sweep with this many: the marginal overhead per trial; 0: none
    sweep_args: tuple[str, ...]
    mlflow_values: int
    stock_ui: bool
    tiny_trials: int  # W_n of (W_n - W_1) / (n - 1), the per_trial_tiny_s figure
    tiny_repeats: int
    search_trials: int
    search_epochs: int
    search_args: tuple[str, ...]


FULL = Plan(
    sizes=(1_500, 10_000),
    n_test=500,
    epochs=2,
    repeats_small=5,
    repeats_large=3,
    sweep_trials=5,
    more_trials=10,
    sweep_args=("trainer.max_epochs=1",),
    mlflow_values=500,
    stock_ui=True,
    tiny_trials=5,
    tiny_repeats=3,
    search_trials=16,
    # Pruning saves epochs, not a trial's fixed cost (~0.75 s here, close to one epoch of
    # these 1,500 images): short trials understate it (8 epochs: 35 %; 16: 48 %, 2026-12-01).
    search_epochs=16,
    search_args=(),
)
QUICK = Plan(
    sizes=(300, 600),
    n_test=100,
    epochs=1,
    repeats_small=1,
    repeats_large=1,
    sweep_trials=2,
    more_trials=0,
    sweep_args=(
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
    ),
    mlflow_values=40,
    stock_ui=False,
    tiny_trials=2,
    tiny_repeats=1,
    search_trials=2,
    search_epochs=2,
    search_args=(
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "mlflow.log_model=false",
    ),
)

# Targets from the issue; anchors measured with lightning-hydra-template on 1,500 images.
TARGETS = {
    "overhead_ratio": ("<= 1.05", None),
    "overhead_ratio_small": ("<= 1.10", "1.65 (1.71 with MLflow)"),
    "startup_s": ("<= 4", "6.0"),
    "per_trial_overhead_s": ("<= 0.3", "0.60"),
    "per_trial_tiny_s": ("< 0.5", "0.77 (0.24 without its logger)"),
    "sweep_peak_rss_mb": ("<= 1150", "1140 (1070 without its logger)"),
    "store_creation_s": (None, "~8"),
    "search_wall_saved": (">= 40 %", None),
    "search_best_gap_pp": ("<= 1", None),
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, object]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()),
        "cuda": torch.cuda.is_available(),
    }


class Project:
    def __init__(self, root: Path, install: bool, threads: int) -> None:
        self.root = root
        self.env = dict(os.environ)
        bin_dir = str(Path(sys.executable).parent)
        self.env["PATH"] = bin_dir + os.pathsep + self.env.get("PATH", "")
        self.env["VIRTUAL_ENV"] = sys.prefix
        self.env.pop("MLFLOW_TRACKING_URI", None)
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env["BENCH_THREADS"] = str(threads)
        if not install:
            self.env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(root), self.env.get("PYTHONPATH")) if p
            )
        self.events_dir = root.parent / "bench_events"
        self.events_dir.mkdir(exist_ok=True)
        self._count = 0
        self.last_cpu_s = 0.0  # CPU seconds (user + system) of the last child and its own

    def run(self, command: list[str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            command, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited {result.returncode}\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
            )
        return result

    def child(self, mode: str, *args: str, **env: str) -> tuple[float, float, list[dict]]:
        """Run one child; return (start time, end time, its events)."""
        self._count += 1
        events = self.events_dir / f"{self._count:03d}-{mode}.jsonl"
        saved = dict(self.env)
        self.env.update(env)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.time()
        try:
            self.run([sys.executable, str(CHILD), mode, str(events), *args])
        finally:
            end = time.time()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            self.last_cpu_s = (after.ru_utime + after.ru_stime) - (
                before.ru_utime + before.ru_stime
            )
            self.env = saved
        lines = events.read_text().splitlines() if events.exists() else []
        return start, end, [json.loads(line) for line in lines]

    def write_data(self, n_train: int, n_test: int) -> None:
        """Replace the raw MNIST and drop the feature cache: the next run rebuilds it."""
        shutil.rmtree(self.root / "_data" / "data" / "MNIST", ignore_errors=True)
        shutil.rmtree(self.root / "_data" / "feature" / "feature01", ignore_errors=True)
        data_dir = self.root / "_data" / "data"
        code = (
            "import sys; from pathlib import Path; sys.path.insert(0, 'tests'); "
            "from mnist_idx_fixture import write_mnist_fixture; "
            f"write_mnist_fixture(Path({str(data_dir)!r}), n_train={n_train}, n_test={n_test})"
        )
        self.run([sys.executable, "-c", code])


def bake(output_dir: Path, template: Path = TEMPLATE_DIR) -> Path:
    from cookiecutter.main import cookiecutter

    return Path(
        cookiecutter(
            str(template),
            no_input=True,
            extra_context={"init_git": "yes"},
            output_dir=str(output_dir),
        )
    )


def only(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e["event"] == name]


def measure_training(
    project: Project, plan: Plan, n_train: int, repeats: int, system_metrics_off: bool = False
) -> dict:
    """Interleaved repeats of bare loop and project stack (and, with `system_metrics_off`,
    the stack without MLflow's system metrics); medians of seconds per epoch."""
    project.write_data(n_train, plan.n_test)
    bare, stack, bare_cpu, stack_cpu, no_system, bare_rss = [], [], [], [], [], []
    for repeat in range(repeats):
        _, _, events = project.child("bare", str(plan.epochs), str(BATCH_SIZE))
        result = only(events, "bare")[0]
        bare_rss.append(only(events, "exit")[0]["peak_rss_mb"])
        bare.append(result["wall_s"] / result["epochs"])
        bare_cpu.append(result["cpu_s"] / result["epochs"])
        _, _, events = project.child(
            "project", TRAIN, f"trainer.max_epochs={plan.epochs}", "+mlflow.tags.bench=training"
        )
        fit = only(events, "fit_end")[0]
        stack.append(fit["wall_s"] / max(1, fit["epochs"]))
        stack_cpu.append(fit["cpu_s"] / max(1, fit["epochs"]))
        if system_metrics_off:
            _, _, events = project.child(
                "project", TRAIN, f"trainer.max_epochs={plan.epochs}", "mlflow.system_metrics=false"
            )
            fit = only(events, "fit_end")[0]
            no_system.append(fit["wall_s"] / max(1, fit["epochs"]))
        log(
            f"{n_train} images, repeat {repeat + 1}/{repeats}: bare {bare[-1]:.3f} s/epoch, "
            f"project {stack[-1]:.3f} s/epoch ({fit['epochs']} epochs)"
        )
    bare_s, stack_s = statistics.median(bare), statistics.median(stack)
    if no_system:
        # The cost of system metrics: the stack with them (default) / without them.
        extra = {"system_metrics_ratio": stack_s / statistics.median(no_system)}
    else:
        extra = {}
    return {
        **extra,
        "bare_peak_rss_mb": statistics.median(bare_rss),
        "n_train_images": n_train,
        "epochs": plan.epochs,
        "repeats": repeats,
        "bare_epoch_s": bare_s,
        "project_epoch_s": stack_s,
        "ratio": stack_s / bare_s,
        # Fastest repeat of each: the least disturbed by other load on a shared machine.
        "ratio_min": min(stack) / min(bare),
        # CPU seconds of the process: less sensitive to other load on a shared machine.
        "bare_epoch_cpu_s": statistics.median(bare_cpu),
        "project_epoch_cpu_s": statistics.median(stack_cpu),
        "ratio_cpu": statistics.median(stack_cpu) / statistics.median(bare_cpu),
        "bare_epoch_s_all": bare,
        "project_epoch_s_all": stack,
    }


# What any sweep into SQLite stores imports, whatever the project's own code does.
STACK_IMPORTS = (
    "import lightning, mlflow, optuna, hydra, omegaconf, torchvision, alembic, "
    "mlflow.store.tracking.sqlalchemy_store"
)


def import_floor(project: Project, repeats: int) -> tuple[float, float, float]:
    """Median time from starting a Python process to its having imported the stack a
    sweep needs (not to its exit: tearing down torch's objects takes seconds more), that
    process's peak RSS, and the peak RSS of one that imports only Lightning (and torch)."""
    walls, rss = [], []
    peak = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    for _ in range(repeats):
        start = time.time()
        # With the garbage collector paused, as train.py imports the stack.
        code = f"import gc; gc.disable(); {STACK_IMPORTS}; import time; print(time.time()); {peak}"
        done = project.run([sys.executable, "-c", code])
        walls.append(float(done.stdout.split()[-2]) - start)
        rss.append(float(done.stdout.split()[-1]))
    lightning = project.run(
        [sys.executable, "-c", f"import gc; gc.disable(); import lightning; {peak}"]
    )
    return statistics.median(walls), statistics.median(rss), float(lightning.stdout.split()[-1])


def run_sweep(project: Project, plan: Plan, trials: int, space: str, **env: str) -> dict:
    """One sweep of `trials` trials in a new study: its wall, start-up, fits and events."""
    args = [TRAIN, "-m", space, f"hydra.sweeper.n_trials={trials}", *plan.sweep_args]
    start, end, events = project.child("project", *args, **env)
    fit_starts = only(events, "fit_start")
    fits = only(events, "fit_end")
    assert len(fits) == trials, f"expected {trials} fits, got {len(fits)}"
    startup = fit_starts[0]["time"] - start
    fit_total = sum(f["wall_s"] for f in fits)
    # Everything but start-up and fits: the trials' bookkeeping, the sweep's end, the exit.
    rest = end - start - startup - fit_total
    return {
        "wall": end - start,
        "startup": startup,
        "fits": fit_total,
        "rest": rest,
        "events": events,
    }


def measure_sweep(project: Project, plan: Plan) -> dict:
    sweep = run_sweep(
        project, plan, plan.sweep_trials, "learning_rate=interval(0.001,0.002)", BENCH_BREAKDOWN="1"
    )
    events, trials = sweep["events"], plan.sweep_trials
    spent = only(events, "breakdown")[0]["seconds"] if only(events, "breakdown") else {}
    marginal = {}
    if plan.more_trials > plan.sweep_trials:
        # What a sweep's one-time costs (its end, the first trial's lazy imports, the exit)
        # add to per_trial_overhead_s drops out of the difference of two sweeps.
        more = run_sweep(project, plan, plan.more_trials, "learning_rate=interval(0.001,0.003)")
        marginal = {
            "more_trials": plan.more_trials,
            "per_trial_overhead_marginal_s": (more["rest"] - sweep["rest"])
            / (plan.more_trials - trials),
        }
    return {
        "trials": trials,
        "seconds_per_trial": {k: sum(v) / trials for k, v in spent.items()},
        "sweep_wall_s": sweep["wall"],
        "startup_s": sweep["startup"],
        "fit_wall_sum_s": sweep["fits"],
        "per_trial_overhead_s": sweep["rest"] / trials,
        **marginal,
        "peak_rss_mb": only(events, "exit")[0]["peak_rss_mb"],
        **dict(
            zip(
                ("import_floor_s", "import_floor_rss_mb", "lightning_import_rss_mb"),
                import_floor(project, repeats=plan.repeats_large),
                strict=True,
            )
        ),
    }


# Trials of one batch each: a trial is then almost pure bookkeeping, whatever the stack.
TINY_TRIAL = (
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
)


def measure_tiny_trials(project: Project, plan: Plan) -> dict:
    """What one more trial costs: (wall of an n-trial sweep - wall of a 1-trial sweep) /
    (n - 1), trials of one batch; each sweep a fresh study, medians of interleaved repeats."""
    walls: dict[int, list[float]] = {1: [], plan.tiny_trials: []}
    cpus: dict[int, list[float]] = {1: [], plan.tiny_trials: []}
    for repeat in range(plan.tiny_repeats):
        for trials in walls:
            space = f"learning_rate=interval(0.001,{0.002 + repeat * 1e-4 + trials * 1e-5:.5f})"
            start, end, _ = project.child(
                "project", TRAIN, "-m", space, f"hydra.sweeper.n_trials={trials}", *TINY_TRIAL
            )
            walls[trials].append(end - start)
            cpus[trials].append(project.last_cpu_s)
            log(f"tiny trials, repeat {repeat + 1}: {trials} trial(s) in {walls[trials][-1]:.2f} s")
    w1, wn = statistics.median(walls[1]), statistics.median(walls[plan.tiny_trials])
    c1, cn = statistics.median(cpus[1]), statistics.median(cpus[plan.tiny_trials])
    return {
        # The same in CPU seconds of the sweep process: what a trial costs a busy machine.
        "per_trial_tiny_cpu_s": (cn - c1) / (plan.tiny_trials - 1),
        "trials": plan.tiny_trials,
        "wall_1_s": w1,
        "wall_n_s": wn,
        "per_trial_tiny_s": (wn - w1) / (plan.tiny_trials - 1),
        "startup_tiny_s": w1 - (wn - w1) / (plan.tiny_trials - 1),
        "walls": {str(k): v for k, v in walls.items()},
    }


# Bad regions on purpose: below ~1e-4 the network barely learns in a few epochs, above ~1e-1
# Adam diverges or stalls; a high dropout slows learning. Pruning has something to stop.
SEARCH_SPACE = ("learning_rate=tag(log, interval(1e-5, 1))", "model.dropout=interval(0, 0.7)")


def measure_search(project: Project, plan: Plan, extra: tuple[str, ...] = ()) -> dict:
    """One seeded sweep with the default pruner, the same without; each its own study.

    `extra`: overrides for both sweeps (--search-args), e.g. another pruner to compare.
    """
    import optuna

    arms: dict[str, dict] = {}
    for arm, pruner_args in (("pruned", ()), ("unpruned", ("hydra.sweeper.pruner=null",))):
        name = f"bench-search-{arm}"
        start, end, events = project.child(
            "project",
            TRAIN,
            "-m",
            *SEARCH_SPACE,
            f"hydra.sweeper.n_trials={plan.search_trials}",
            f"hydra.sweeper.study_name={name}",
            # Diverging trials are part of the space: they must not stop the sweep.
            "hydra.sweeper.max_failure_rate=1",
            f"trainer.max_epochs={plan.search_epochs}",
            *plan.search_args,
            *extra,
            *pruner_args,
        )
        storage = f"sqlite:///{project.root / 'logs' / 'optuna.db'}"
        trials = optuna.load_study(study_name=name, storage=storage).trials
        states = {state.name: 0 for state in optuna.trial.TrialState}
        for trial in trials:
            states[trial.state.name] += 1
        complete = [t.value for t in trials if t.state.name == "COMPLETE"]
        fits = only(events, "fit_end")
        arms[arm] = {
            "wall_s": end - start,
            "trials": len(trials),
            "complete": states["COMPLETE"],
            "pruned": states["PRUNED"],
            "failed": states["FAIL"],
            "epochs_trained": sum(f["epochs_started"] for f in fits),
            "best_value": max(complete) if complete else float("nan"),
        }
        log(
            f"search, {arm}: {arms[arm]['wall_s']:.1f} s, {arms[arm]['epochs_trained']} epochs, "
            f"{states['PRUNED']} pruned, {states['FAIL']} failed, best {arms[arm]['best_value']}"
        )
    pruned, unpruned = arms["pruned"], arms["unpruned"]
    epochs = plan.search_epochs
    for override in (*plan.search_args, *extra):  # the last setting wins, as in Hydra
        if override.startswith("trainer.max_epochs="):
            epochs = int(override.split("=", 1)[1])
    return {
        **arms,
        "space": list(SEARCH_SPACE),
        "extra_overrides": list(extra),
        "epochs_per_trial": epochs,
        "wall_ratio": pruned["wall_s"] / unpruned["wall_s"],
        "wall_saved": 1 - pruned["wall_s"] / unpruned["wall_s"],
        "epochs_ratio": pruned["epochs_trained"] / max(1, unpruned["epochs_trained"]),
        # Percentage points of val/acc lost by pruning (negative: pruning found better).
        "best_gap_pp": 100 * (unpruned["best_value"] - pruned["best_value"]),
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def time_to_http_200(project: Project, command: list[str], url: str, timeout: float) -> float:
    log_file = project.events_dir / f"ui-{free_port()}.log"
    with log_file.open("wb") as sink:
        start = time.time()
        process = subprocess.Popen(
            command,
            cwd=project.root,
            env=project.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while time.time() - start < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited early:\n{log_file.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return time.time() - start
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{command} did not answer 200 within {timeout:.0f} s")
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=15)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def measure_mlflow(project: Project, plan: Plan) -> dict:
    store = Path(tempfile.mkdtemp(prefix="store-", dir=project.events_dir))
    _, _, events = project.child("mlflow", str(store), str(plan.mlflow_values))
    figures = dict(only(events, "mlflow")[0])
    for key in ("event", "time"):
        figures.pop(key)
    port = free_port()
    figures["ui_script_first_200_s"] = time_to_http_200(
        project,
        ["bash", "scripts/mlflow_ui.sh", "--port", str(port)],
        f"http://127.0.0.1:{port}/",
        timeout=120,
    )
    if plan.stock_ui:
        port = free_port()
        db = project.root / "logs" / "mlruns" / "mlflow.db"
        figures["ui_stock_first_200_s"] = time_to_http_200(
            project,
            [
                sys.executable,
                "-m",
                "mlflow",
                "ui",
                "--backend-store-uri",
                f"sqlite:///{db}",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            f"http://127.0.0.1:{port}/",
            timeout=180,
        )
    return figures


def table(figures: dict) -> str:
    def row(name: str, value: object, unit: str, key: str | None = None) -> str:
        target, anchor = TARGETS.get(key or "", (None, None))
        if isinstance(value, float):
            # Three significant digits, but never 1.04e+03: MB figures run into thousands.
            shown = f"{value:,.0f} {unit}" if abs(value) >= 1000 else f"{value:.3g} {unit}"
        else:
            shown = f"{value} {unit}"
        shown = shown.strip()
        return f"| {name} | {shown} | {target or ''} | {anchor or ''} |"

    lines = [
        "| figure | measured | target | lightning-hydra-template |",
        "| --- | --- | --- | --- |",
    ]
    for section, key in (
        ("training_small", "overhead_ratio_small"),
        ("training", "overhead_ratio"),
    ):
        if section not in figures:
            continue
        data = figures[section]
        n = data["n_train_images"]
        lines.append(row(f"bare PyTorch, s/epoch ({n} images)", data["bare_epoch_s"], "s"))
        lines.append(row(f"project stack, s/epoch ({n} images)", data["project_epoch_s"], "s"))
        lines.append(row(f"overhead ratio `{key}`", data["ratio"], "x", key))
        lines.append(row(f"same, fastest repeats ({n} images)", data["ratio_min"], "x"))
        lines.append(row(f"same, in process CPU time ({n} images)", data["ratio_cpu"], "x"))
        if "system_metrics_ratio" in data:
            lines.append(
                row(
                    f"system metrics on / off, s/epoch ({n} images)",
                    data["system_metrics_ratio"],
                    "x",
                )
            )
    if "sweep" in figures:
        sweep = figures["sweep"]
        lines += [
            row(
                f"sweep start-up `startup_s` ({sweep['trials']} trials)",
                sweep["startup_s"],
                "s",
                "startup_s",
            ),
            row(
                "of which: only importing the stack (Lightning, MLflow's SQL store, Optuna, Hydra)",
                sweep["import_floor_s"],
                "s",
            ),
            row(
                "overhead per trial `per_trial_overhead_s`",
                sweep["per_trial_overhead_s"],
                "s",
                "per_trial_overhead_s",
            ),
            row(
                f"one more 1-batch trial `per_trial_tiny_s` ((W{figures['tiny']['trials']} - W1)"
                f" / {figures['tiny']['trials'] - 1}, medians)",
                figures["tiny"]["per_trial_tiny_s"],
                "s",
                "per_trial_tiny_s",
            ),
            row(
                "same, in CPU seconds of the sweep process",
                figures["tiny"]["per_trial_tiny_cpu_s"],
                "s",
            ),
            row(
                "start-up, 1-batch trials (W1 - per_trial_tiny_s)",
                figures["tiny"]["startup_tiny_s"],
                "s",
            ),
            row(
                "sweep wall / sum of fit walls",
                sweep["sweep_wall_s"],
                f"s / {sweep['fit_wall_sum_s']:.3g} s",
            ),
            row("sweep process peak RSS", sweep["peak_rss_mb"], "MB", "sweep_peak_rss_mb"),
            row(
                "of which: only importing the stack / importing only Lightning and torch",
                sweep["import_floor_rss_mb"],
                f"MB / {sweep['lightning_import_rss_mb']:.0f} MB",
            ),
        ]
        if "per_trial_overhead_marginal_s" in sweep:
            more, fewer = sweep["more_trials"], sweep["trials"]
            label = f"same, marginal: (rest of {more} trials - rest of {fewer}) / {more - fewer}"
            at = next(i for i, line in enumerate(lines) if "`per_trial_overhead_s`" in line)
            lines.insert(at + 1, row(label, sweep["per_trial_overhead_marginal_s"], "s"))
        if "training_small" in figures:
            small = figures["training_small"]
            floor = (
                small["bare_peak_rss_mb"]
                + sweep["import_floor_rss_mb"]
                - sweep["lightning_import_rss_mb"]
            )
            lines.append(
                row(
                    "RSS floor: the bare loop's peak + the rest of the stack's imports",
                    floor,
                    f"MB (bare loop {small['bare_peak_rss_mb']:.0f} MB)",
                )
            )
    if "search" in figures:
        search = figures["search"]
        if search.get("extra_overrides"):
            lines.append(
                row("search: overrides of both sweeps", " ".join(search["extra_overrides"]), "")
            )
        pruner = "pruner on" if search.get("extra_overrides") else "default pruner"
        for arm, label in (("pruned", pruner), ("unpruned", "pruner=null")):
            data = search[arm]
            lines.append(
                row(
                    f"search, {label}: wall ({data['trials']} trials, "
                    f"{search['epochs_per_trial']} epochs each)",
                    data["wall_s"],
                    "s",
                )
            )
            lines.append(
                row(
                    f"search, {label}: epochs trained / trials pruned / failed",
                    data["epochs_trained"],
                    f"/ {data['pruned']} / {data['failed']}",
                )
            )
            lines.append(row(f"search, {label}: best val/acc", data["best_value"], ""))
        lines.append(
            row(
                "wall time saved by pruning `search_wall_saved`",
                100 * search["wall_saved"],
                f"% (ratio {search['wall_ratio']:.2f}, epochs {search['epochs_ratio']:.2f})",
                "search_wall_saved",
            )
        )
        lines.append(
            row(
                "best val/acc lost by pruning `search_best_gap_pp`",
                search["best_gap_pp"],
                "pp",
                "search_best_gap_pp",
            )
        )
    if "mlflow" in figures:
        ml = figures["mlflow"]
        lines += [
            row(
                "new SQLite store (create + migrate)",
                ml["store_creation_s"],
                "s",
                "store_creation_s",
            ),
            row("MLflow `log_metric`, sync, per value", ml["log_metric_sync_s"] * 1e3, "ms"),
            row("MLflow `log_batch` of 10, sync, per value", ml["log_batch_sync_s"] * 1e3, "ms"),
            row(
                "MLflow `log_batch` of 10, async, blocking per value",
                ml["log_batch_async_blocking_s"] * 1e3,
                "ms",
            ),
            row(
                "MLflow `log_batch` of 10, async, incl. flush, per value",
                ml["log_batch_async_total_s"] * 1e3,
                "ms",
            ),
            row("`scripts/mlflow_ui.sh`: first HTTP 200", ml["ui_script_first_200_s"], "s"),
        ]
        if "ui_stock_first_200_s" in ml:
            lines.append(row("stock `mlflow ui`: first HTTP 200", ml["ui_stock_first_200_s"], "s"))
    return "\n".join(lines)


def breakdown(figures: dict) -> str:
    """Seconds per trial of the sweep's main steps (fit excluded), largest first."""
    spent = figures.get("sweep", {}).get("seconds_per_trial", {})
    if not spent:
        return ""
    lines = ["| sweep step (mean per trial) | seconds |", "| --- | --- |"]
    lines += [f"| {k} | {v:.3f} |" for k, v in sorted(spent.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", "--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--install", action="store_true", help="pip install -e the project")
    parser.add_argument("--keep", action="store_true", help="keep the baked project")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--template",
        type=Path,
        default=TEMPLATE_DIR,
        help="template to bake (e.g. a `git worktree` of an older commit, for before/after)",
    )
    parser.add_argument(
        "--parts",
        default="training,sweep,mlflow,search",
        help="comma-separated subset of training,sweep,mlflow,search (default: all)",
    )
    parser.add_argument(
        "--search-args",
        default="",
        help="space-separated overrides for both sweeps of the search part, e.g. "
        "'hydra/sweeper/pruner=percentile callbacks.early_stopping=null'",
    )
    args = parser.parse_args(argv)
    args.parts = set(args.parts.split(","))
    plan = QUICK if args.quick else FULL

    started = time.time()
    info = machine()
    threads = args.threads or int(info["torch_threads"])
    info["torch_threads"] = threads
    workdir = Path(tempfile.mkdtemp(prefix="template-bench-"))
    try:
        project_root = bake(workdir, args.template)
        log(f"baked {project_root}")
        if args.install:
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "-e", "."],
                cwd=project_root,
                check=True,
            )
        project = Project(project_root, install=args.install, threads=threads)
        parts: dict[str, dict] = {}
        if "training" in args.parts:
            parts["training"] = measure_training(project, plan, plan.sizes[1], plan.repeats_large)
        if args.parts & {"training", "sweep", "search"}:
            # Also leaves the small data in place (its cache built) for the sweep.
            repeats = plan.repeats_small if "training" in args.parts else 1
            # Templates older than MLflow's system metrics (--template) have no switch.
            config = (project_root / "config/model/model01/config.yaml").read_text()
            parts["training_small"] = measure_training(
                project,
                plan,
                plan.sizes[0],
                repeats,
                system_metrics_off="training" in args.parts and "system_metrics:" in config,
            )
        if "sweep" in args.parts:
            log("sweep")
            parts["sweep"] = measure_sweep(project, plan)
            parts["tiny"] = measure_tiny_trials(project, plan)
        if "mlflow" in args.parts:
            log("mlflow")
            parts["mlflow"] = measure_mlflow(project, plan)
        if "search" in args.parts:
            log("search (pruning)")
            parts["search"] = measure_search(project, plan, tuple(args.search_args.split()))
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    figures: dict = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if args.quick else "full",
        "machine": info,
    }
    if "training" in parts:
        figures["overhead_ratio"] = parts["training"]["ratio"]
    if "training_small" in parts:
        figures["overhead_ratio_small"] = parts["training_small"]["ratio"]
    if "sweep" in parts:
        for key in ("startup_s", "per_trial_overhead_s"):
            figures[key] = parts["sweep"][key]
        figures["sweep_peak_rss_mb"] = parts["sweep"]["peak_rss_mb"]
        figures["per_trial_tiny_s"] = parts["tiny"]["per_trial_tiny_s"]
    if "search" in parts:
        figures["search_wall_saved"] = parts["search"]["wall_saved"]
        figures["search_best_gap_pp"] = parts["search"]["best_gap_pp"]
    figures.update(parts)
    figures["load_average_at_end"] = list(os.getloadavg())
    figures["benchmark_wall_s"] = time.time() - started
    print(
        f"Machine: {info['cpu']}, {info['logical_cpus']} logical CPUs, "
        f"{threads} torch threads, torch {info['torch']}, Python {info['python']}, "
        f"load average {info['load_average'][0]:.2f} at start, "
        f"{figures['load_average_at_end'][0]:.2f} at end"
    )
    print(
        f"Date: {figures['date']}  mode: {figures['mode']}  batch size {BATCH_SIZE}, "
        f"{plan.epochs} epoch(s) per training run\n"
    )
    print(table(figures))
    if breakdown(figures):
        print("\n" + breakdown(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
