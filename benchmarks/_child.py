"""Child processes of benchmarks/run.py: one measurement each, results as JSON lines.

    python _child.py project <events.jsonl> <script> [hydra args...]  # a project entry point
    python _child.py bare <events.jsonl> <epochs> <batch_size>         # the bare PyTorch loop
    python _child.py mlflow <events.jsonl> <store dir> <n_values>      # MLflow logging costs

`project` runs the script exactly as `python <script> ...` would (runpy, `__main__`), with
`lightning.Trainer.fit` wrapped to record when each fit starts and ends, so the project
needs no benchmark hooks; the wrappers are put in place as the script imports Lightning,
so the child imports nothing of the stack itself. Every mode appends its figures to
<events.jsonl>, and the process's peak RSS at exit. Run with the generated project's root
on PYTHONPATH.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.util
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

EVENTS = sys.argv[2]


def emit(event: str, **fields: object) -> None:
    with open(EVENTS, "a") as sink:
        sink.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")


def _peak_rss() -> None:
    # ru_maxrss is in KiB on Linux.
    emit("exit", peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _threads() -> None:
    import torch

    _set_threads(torch)


def _set_threads(torch: Any) -> None:
    if os.environ.get("BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["BENCH_THREADS"]))


def after_import(name: str, patch: Callable[[ModuleType], None]) -> None:
    """Call `patch(module)` as soon as module `name` has been imported by someone else.

    The child must not import the project's stack itself before the script runs: the
    script's own way of importing it (train.py pauses the garbage collector) is part of
    what is measured.
    """
    if name in sys.modules:
        patch(sys.modules[name])
        return

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
            if fullname != name:
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(fullname)
            original = spec.loader.exec_module

            def exec_module(module: ModuleType) -> None:
                original(module)
                patch(module)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, Finder())


# Where a trial's time goes besides fit: (module, attribute path, label), wrapped if present.
_BREAKDOWN = (
    ("hydra.core.utils", "run_job", "hydra job (whole trial)"),
    (
        "hydra._internal.config_loader_impl",
        "ConfigLoaderImpl.load_sweep_config",
        "hydra: compose the trial's config",
    ),
    ("src.utils.tracking.runs.training_run", "TrainingRun.__init__", "run set-up (store, experiment, tags)"),
    ("src.utils.tracking.runs.training_run", "TrainingRun.__enter__", "run creation, params, config, env"),
    ("src.utils.tracking.runs.training_run", "TrainingRun.log_data_versions", "data versions"),
    ("src.utils.tracking.runs.training_run", "TrainingRun.log_file", "checkpoint artifact"),
    ("src.utils.tracking.runs.training_run", "TrainingRun.log_image", "confusion matrix upload"),
    ("src.utils.tracking.runs.training_run", "TrainingRun.log_pytorch_model", "MLflow model (hand-over)"),
    ("src.utils.tracking.runs.training_run", "TrainingRun._save_model", "MLflow model (writer thread)"),
    ("src.utils.tracking.runs.deferred_writes", "DeferredWriter.wait", "waiting for the writer thread"),
    ("src.utils.tracking.runs.training_run", "TrainingRun.__exit__", "run end"),
    ("src.model.model01.evaluation", "score_test_set", "test pass (best weights, test tensors)"),
    ("src.model.model01.evaluation", "confusion_matrix_image", "confusion matrix plot"),
    ("src.utils.sweep.parent_run", "SweepParentRun.log_study_summary", "sweep summary + plots"),
    ("src.utils.sweep.parent_run", "SweepParentRun.register_champion", "model registry"),
)
_SPENT: dict[str, list[float]] = {}


def _wrap_breakdown() -> None:
    import functools

    def timed(original: Callable, label: str) -> Callable:
        @functools.wraps(original)
        def wrapper(*args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                _SPENT.setdefault(label, []).append(time.perf_counter() - start)

        return wrapper

    def wrap(path: str, label: str) -> Callable[[ModuleType], None]:
        def patch(owner: object) -> None:
            *parents, name = path.split(".")
            try:
                for parent in parents:
                    owner = getattr(owner, parent)
                setattr(owner, name, timed(getattr(owner, name), label))
            except AttributeError:
                pass  # not in this version of the project

        return patch

    for module_name, path, label in _BREAKDOWN:
        after_import(module_name, wrap(path, label))
    atexit.register(lambda: emit("breakdown", seconds=_SPENT))


def run_project(script: str, args: list[str]) -> None:
    import runpy

    after_import("torch", _set_threads)
    if os.environ.get("BENCH_BREAKDOWN"):
        _wrap_breakdown()

    def wrap_fit(trainer_module: ModuleType) -> None:
        trainer_class = trainer_module.Trainer
        original_fit = trainer_class.fit

        def timed_fit(self: Any, *fit_args: object, **fit_kwargs: object) -> object:
            emit("fit_start")
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return original_fit(self, *fit_args, **fit_kwargs)
            finally:
                emit(
                    "fit_end",
                    wall_s=time.perf_counter() - start,
                    cpu_s=time.process_time() - cpu,
                    epochs=int(self.current_epoch),
                    # Epochs begun, the one a pruned or failed fit stopped in included.
                    epochs_started=int(self.fit_loop.epoch_progress.total.started),
                    batches_per_epoch=int(self.num_training_batches),
                )

        trainer_class.fit = timed_fit

    after_import("lightning.pytorch.trainer.trainer", wrap_fit)
    script = os.path.abspath(script)  # as `python script` sets __file__
    sys.argv = [script, *args]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as stop:
        if stop.code not in (None, 0):
            raise


def run_bare(epochs: int, batch_size: int) -> None:
    """The same model, data, batch size, epochs and validation pass, with nothing around it."""
    import torch
    from src.feature.feature01.mnist_datamodule import MNISTDataModule
    from src.model.model01.image_classifier_models import DigitCNN
    from torch import nn

    _threads()
    torch.manual_seed(42)
    datamodule = MNISTDataModule(batch_size=batch_size, split_seed=42)
    features = datamodule.features()
    datamodule.setup("fit")
    train_x, train_y = datamodule.train_set.tensors
    val_x, val_y = datamodule.val_set.tensors
    model = DigitCNN(pixel_mean=features.mean, pixel_std=features.std)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    epoch_walls = []
    cpu = time.process_time()
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_x))
        for first in range(0, len(order), batch_size):
            idx = order[first : first + batch_size]
            loss = loss_fn(model(train_x[idx]), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        correct, total_loss = 0, 0.0
        with torch.no_grad():
            for first in range(0, len(val_x), batch_size):
                logits = model(val_x[first : first + batch_size])
                labels = val_y[first : first + batch_size]
                total_loss += float(loss_fn(logits, labels)) * len(labels)
                correct += int((logits.argmax(1) == labels).sum())
        epoch_walls.append(time.perf_counter() - start)
    cpu_s = time.process_time() - cpu
    emit(
        "bare",
        wall_s=sum(epoch_walls),
        cpu_s=cpu_s,
        epochs=epochs,
        epoch_walls=epoch_walls,
        n_train=len(train_x),
        n_val=len(val_x),
        val_acc=correct / len(val_x),
        threads=torch.get_num_threads(),
    )


def run_mlflow(store_dir: str, n_values: int) -> None:
    """Store creation, then per-value cost of sync log_metric, sync and async log_batch."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from pathlib import Path

    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    store = Path(store_dir)
    store.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    start = time.perf_counter()
    client = MlflowClient(uri)
    experiment_id = client.create_experiment(
        "bench", artifact_location=(store / "artifacts").as_uri()
    )
    store_creation_s = time.perf_counter() - start
    run_id = client.create_run(experiment_id).info.run_id

    start = time.perf_counter()
    for step in range(n_values):
        client.log_metric(run_id, "single", 0.5, step=step)
    single_s = (time.perf_counter() - start) / n_values

    batch = 10  # about what Lightning sends per logging call (a few metrics)
    now = int(time.time() * 1000)
    calls = max(1, n_values // batch)
    start = time.perf_counter()
    for call in range(calls):
        metrics = [Metric(f"m{i}", 0.5, now, call) for i in range(batch)]
        client.log_batch(run_id, metrics=metrics)
    batch_sync_s = (time.perf_counter() - start) / (calls * batch)

    start = time.perf_counter()
    for call in range(calls):
        metrics = [Metric(f"a{i}", 0.5, now, call) for i in range(batch)]
        client.log_batch(run_id, metrics=metrics, synchronous=False)
    batch_async_blocking_s = (time.perf_counter() - start) / (calls * batch)
    mlflow.flush_async_logging()
    batch_async_total_s = (time.perf_counter() - start) / (calls * batch)
    logged = len(client.get_metric_history(run_id, "a0"))
    emit(
        "mlflow",
        store_creation_s=store_creation_s,
        log_metric_sync_s=single_s,
        log_batch_sync_s=batch_sync_s,
        log_batch_async_blocking_s=batch_async_blocking_s,
        log_batch_async_total_s=batch_async_total_s,
        async_values_landed=logged == calls,
    )


def main() -> None:
    atexit.register(_peak_rss)
    mode = sys.argv[1]
    emit("start", mode=mode)
    if mode == "project":
        run_project(sys.argv[3], sys.argv[4:])
    elif mode == "bare":
        run_bare(int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "mlflow":
        run_mlflow(sys.argv[3], int(sys.argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
