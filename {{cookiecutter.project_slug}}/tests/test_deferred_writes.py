"""A sweep's deferred uploads (runs/deferred_writes.py) lose nothing: written, failed or killed."""

from __future__ import annotations

import os
import signal
import threading
import time

import optuna
import pytest
import torch
from conftest import run_python
from mlflow import MlflowClient
from test_tracking import new_run

from src.model.model01.image_classifier_models import DigitCNN
from src.utils.tracking.registry import register_best_trial
from src.utils.tracking.runs.deferred_writes import active_writer, deferred_writes


def status_of(uri: str, run_id: str) -> tuple[str, dict[str, str]]:
    run = MlflowClient(uri).get_run(run_id)
    return run.info.status, run.data.tags


def artifacts_of(uri: str, run_id: str, path: str | None = None) -> set[str]:
    return {a.path for a in MlflowClient(uri).list_artifacts(run_id, path)}


def test_a_deferred_run_ends_finished_only_once_its_artifacts_are_written(tracking_uri, tmp_path):
    checkpoint = tmp_path / "best.ckpt"
    checkpoint.write_bytes(b"weights")
    release = threading.Event()
    with deferred_writes() as writer:
        with new_run() as run:
            run.log_file(checkpoint, "checkpoints")
            run._submit("slow upload", lambda: release.wait(10))
        # The trial returned; its run waits for the writer thread, as the next trial trains.
        assert status_of(tracking_uri, run.run_id)[0] == "RUNNING"
        release.set()
    assert active_writer() is None and not writer.failures
    assert status_of(tracking_uri, run.run_id)[0] == "FINISHED"
    assert "checkpoints/best.ckpt" in artifacts_of(tracking_uri, run.run_id, "checkpoints")


def test_a_deferred_run_ends_with_its_last_system_metrics_sample(tracking_uri):
    with deferred_writes(), new_run("mlflow.system_metrics_interval=60") as run:
        pass  # shorter than one interval: only the sample taken when it stops
    logged = MlflowClient(tracking_uri).get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    assert "system/cpu_utilization_percentage" in logged.data.metrics


def test_a_run_whose_deferred_logging_fails_ends_failed_with_the_error(tracking_uri):
    with deferred_writes() as writer:
        with new_run() as run:
            run.log_image("not an image", "plots/broken.png")
    status, tags = status_of(tracking_uri, run.run_id)
    assert status == "FAILED"
    assert tags["error"].startswith("deferred logging of plots/broken.png failed: TypeError")
    assert "error.txt" in artifacts_of(tracking_uri, run.run_id)
    assert writer.failures == [(run.run_id, tags["error"])]


def test_ctrl_c_waits_for_the_pending_uploads_before_stopping(tracking_uri, tmp_path):
    checkpoint = tmp_path / "best.ckpt"
    checkpoint.write_bytes(b"weights")
    with pytest.raises(KeyboardInterrupt), deferred_writes():
        with new_run() as run:
            run._submit("slow upload", lambda: time.sleep(0.5))
            run.log_file(checkpoint, "checkpoints")
        raise KeyboardInterrupt  # Ctrl-C while the next trial trains
    assert status_of(tracking_uri, run.run_id)[0] == "FINISHED"
    assert "checkpoints/best.ckpt" in artifacts_of(tracking_uri, run.run_id, "checkpoints")


def test_a_second_ctrl_c_ends_the_unwritten_runs_killed_naming_what_is_missing(tracking_uri):
    started, never = threading.Event(), threading.Event()

    def second_ctrl_c() -> None:
        # The first Ctrl-C is waiting for the stuck upload when the second one arrives.
        started.wait(30)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    def stuck() -> None:
        started.set()
        never.wait(30)

    threading.Thread(target=second_ctrl_c, daemon=True).start()
    with pytest.raises(KeyboardInterrupt), deferred_writes():
        with new_run() as run:
            run._submit("stuck upload", stuck)
            run._submit("model", lambda: None)
        raise KeyboardInterrupt
    never.set()
    status, tags = status_of(tracking_uri, run.run_id)
    assert status == "KILLED"
    assert tags["not_written"] == "stuck upload, model, system metrics"


def test_the_champion_is_never_a_run_whose_model_was_not_written(tracking_uri):
    client = MlflowClient(tracking_uri)
    with deferred_writes():
        with new_run("sweep.study_name=s", "sweep.trial_number=0") as broken:
            broken.log_image("not an image", "plots/broken.png")
            broken.log_pytorch_model(DigitCNN(), torch.zeros(2, 1, 28, 28))
        with new_run("sweep.study_name=s", "sweep.trial_number=1") as complete:
            complete.log_pytorch_model(DigitCNN(), torch.zeros(2, 1, 28, 28))
    assert status_of(tracking_uri, broken.run_id)[0] == "FAILED"
    assert not client.get_run(broken.run_id).outputs.model_outputs  # never written

    def study_whose_best_is(trial_number: int) -> optuna.Study:
        study = optuna.create_study(study_name="s", direction="maximize")
        for number in range(2):
            value = 0.9 if number == trial_number else 0.5
            study.add_trial(optuna.trial.create_trial(value=value, params={}, distributions={}))
        return study

    assert register_best_trial(client, "model01", study_whose_best_is(0), "val/acc") is None
    version = register_best_trial(client, "model01", study_whose_best_is(1), "val/acc")
    assert version is not None and version.run_id == complete.run_id


def test_a_sweep_checks_that_a_model_class_loads_back_once(tracking_uri, monkeypatch):
    import mlflow.pyfunc

    import src.utils.tracking.runs.training_run as tracking_run

    monkeypatch.setattr(tracking_run, "_SERVING_CHECKED", set())
    checked, load = [], mlflow.pyfunc.load_model

    def counted(model_uri: str, *args: object, **kwargs: object) -> object:
        checked.append(model_uri)
        return load(model_uri, *args, **kwargs)

    monkeypatch.setattr(mlflow.pyfunc, "load_model", counted)
    with deferred_writes():
        for _ in range(2):
            with new_run() as run:
                run.log_pytorch_model(DigitCNN(), torch.zeros(2, 1, 28, 28))
    assert len(checked) == 1  # MLflow loaded the first trial's model back, not the second's
    # The second trial's model is logged all the same.
    assert MlflowClient(tracking_uri).get_run(run.run_id).outputs.model_outputs


def test_a_logged_model_is_ready_loads_back_and_carries_the_runs_params_and_test_metrics(
    tracking_uri,
):
    import mlflow

    with deferred_writes():
        with new_run("sweep.study_name=s", "sweep.trial_number=0") as run:
            run.log_metrics({"test/acc": 0.75, "test/loss": 0.5}, step=12)
            run.log_pytorch_model(DigitCNN(), torch.zeros(2, 1, 28, 28))
    client = MlflowClient(tracking_uri)
    (output,) = client.get_run(run.run_id).outputs.model_outputs
    model = client.get_logged_model(output.model_id)
    assert (str(model.status), model.source_run_id, model.name) == (
        "READY",
        run.run_id,
        "model",
    )
    assert output.step == 12
    assert model.params["learning_rate"] == client.get_run(run.run_id).data.params["learning_rate"]
    assert {m.key: m.value for m in model.metrics} == {"test/acc": 0.75, "test/loss": 0.5}
    # What the notebook and the server load: the run's model, as the class it was logged as.
    loaded = mlflow.pytorch.load_model(f"runs:/{run.run_id}/model")
    assert isinstance(loaded, DigitCNN)
    info = mlflow.models.get_model_info(f"models:/{output.model_id}")
    assert info.run_id == run.run_id and info.signature is not None


def test_a_model_whose_files_fail_to_upload_is_failed_and_never_the_champion(
    tracking_uri, monkeypatch
):
    def upload_fails(self: MlflowClient, model_id: str, local_dir: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(MlflowClient, "log_model_artifacts", upload_fails)
    with deferred_writes():
        with new_run("sweep.study_name=s", "sweep.trial_number=0") as run:
            run.log_pytorch_model(DigitCNN(), torch.zeros(2, 1, 28, 28))
    client = MlflowClient(tracking_uri)
    status, tags = status_of(tracking_uri, run.run_id)
    assert status == "FAILED"
    assert not client.get_run(run.run_id).outputs.model_outputs  # nothing links to it
    (model,) = client.search_logged_models(
        experiment_ids=[client.get_run(run.run_id).info.experiment_id]
    )
    assert str(model.status) == "FAILED"
    study = optuna.create_study(study_name="s", direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.9, params={}, distributions={}))
    assert register_best_trial(client, "model01", study, "val/acc") is None


LOG_A_MODEL = """
import sys
from pathlib import Path

import torch

sys.path.insert(0, "tests")
import src.utils.tracking.store.mlflow_store as store
from test_tracking import new_run

from src.model.model01.image_classifier_models import DigitCNN
from src.utils.tracking.runs.deferred_writes import deferred_writes

store.MLRUNS_DIR = Path(sys.argv[1])
with deferred_writes():
    with new_run() as run:
        run.log_pytorch_model(DigitCNN(), torch.zeros(2, 1, 28, 28))
print(sorted(m for m in ("mlflow.pytorch", "pytorch_lightning") if m in sys.modules))
from mlflow.pytorch._lightning_autolog import patched_fit  # autolog() still imports it
"""


def test_logging_a_model_does_not_import_a_second_copy_of_lightning(tracking_uri, tmp_path):
    done = run_python(LOG_A_MODEL, str(tmp_path / "mlruns"), MLFLOW_TRACKING_URI=tracking_uri)
    assert done.stdout.splitlines()[-1] == "['mlflow.pytorch']"
