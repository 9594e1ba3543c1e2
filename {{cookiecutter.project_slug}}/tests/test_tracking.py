"""A training run's MLflow bookkeeping: created, logged into and always ended."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
import torch
from conftest import compose_train_config, run_python
from mlflow import MlflowClient
from omegaconf import open_dict

from src.utils.tracking.runs.training_run import TrainingRun
from src.utils.tracking.store import sqlite_wal


def runs_of(uri: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("model01")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def new_run(*overrides: str) -> TrainingRun:
    cfg = compose_train_config(list(overrides))
    with open_dict(cfg):
        del cfg["hydra"]  # train.py's config, as @hydra.main hands it over
    return TrainingRun(cfg, entry_point="src/model/model01/train.py", model_kind="test")


def test_a_run_ends_finished_with_its_config_and_environment(tracking_uri):
    with new_run("learning_rate=0.0042") as run:
        run.log_text("hello", "notes.txt")
    (logged,) = runs_of(tracking_uri)
    assert logged.info.run_id == run.run_id and logged.info.status == "FINISHED"
    assert logged.data.params["learning_rate"] == "0.0042"
    assert logged.data.tags["env.python"]
    artifacts = {a.path for a in MlflowClient(tracking_uri).list_artifacts(run.run_id)}
    assert {"config", "environment", "notes.txt"} <= artifacts


# Resident kB of cuDNN's libraries in a fresh process, after the environment tags.
CUDNN_RESIDENT = """
import torch
from src.utils.tracking.runs.environment import environment_tags
tags = environment_tags()
resident, library = 0, ""
for line in open("/proc/self/smaps"):
    fields = line.split()
    if fields and "-" in fields[0] and not fields[0].endswith(":"):
        library = fields[5] if len(fields) > 5 else ""
    elif fields and fields[0] == "Rss:" and "cudnn" in library:
        resident += int(fields[1])
print(resident, tags["env.cudnn"])
"""


@pytest.mark.skipif(
    torch.cuda.is_available() or not torch.version.cuda or not Path("/proc/self/smaps").exists(),
    reason="a CUDA build of torch on a Linux machine without a CUDA device",
)
def test_environment_tags_leave_cudnn_unloaded_without_a_cuda_device():
    # torch.backends.cudnn.version() made ~50 MB of cuDNN resident in every training
    # process, on machines that never use it.
    resident_kb, tag = run_python(CUDNN_RESIDENT).stdout.split(maxsplit=1)
    assert int(resident_kb) < 1024, f"{resident_kb} kB of cuDNN resident"
    assert tag.strip() == "none (no CUDA device)"


def test_a_signal_while_the_run_is_being_set_up_still_ends_it_killed(
    tracking_uri, monkeypatch: pytest.MonkeyPatch
):
    # SIGTERM arriving after the run was created but before training started (the
    # sweeper's Ctrl-C/SIGTERM path) must not leave the run RUNNING.
    def interrupted(self: TrainingRun) -> None:
        raise KeyboardInterrupt("received signal SIGTERM")

    monkeypatch.setattr(TrainingRun, "log_environment", interrupted)
    with pytest.raises(KeyboardInterrupt), new_run():
        pytest.fail("the body must not run")
    (logged,) = runs_of(tracking_uri)
    assert logged.info.status == "KILLED"
    assert logged.data.tags["error"] == "KeyboardInterrupt: received signal SIGTERM"


def test_an_error_in_the_body_ends_the_run_failed_with_its_traceback(tracking_uri):
    with pytest.raises(ValueError, match="broken"), new_run() as run:
        raise ValueError("broken")
    (logged,) = runs_of(tracking_uri)
    assert logged.info.status == "FAILED"
    assert logged.data.tags["error"] == "ValueError: broken"
    error_txt = MlflowClient(tracking_uri).download_artifacts(run.run_id, "error.txt")
    with open(error_txt) as handle:
        assert "Traceback" in handle.read()


def test_lightning_does_not_end_the_run_before_the_job_does(tracking_uri):
    # Lightning finalizes its logger after fit and after test; the run must stay open for
    # the test metrics and artifacts that follow, and end once with the job's status.
    with new_run() as run:
        run.logger.finalize("success")
        assert MlflowClient(tracking_uri).get_run(run.run_id).info.status == "RUNNING"
    assert MlflowClient(tracking_uri).get_run(run.run_id).info.status == "FINISHED"


def test_a_run_records_system_metrics_even_when_shorter_than_one_interval(tracking_uri):
    with new_run("mlflow.system_metrics_interval=60") as run:
        pass
    metrics = MlflowClient(tracking_uri).get_run(run.run_id).data.metrics
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(
        metrics
    )
    assert metrics["system/system_memory_usage_megabytes"] > 0


def test_system_metrics_switch_off_with_one_key(tracking_uri):
    with new_run("mlflow.system_metrics=false") as run:
        pass
    metrics = MlflowClient(tracking_uri).get_run(run.run_id).data.metrics
    assert not [key for key in metrics if key.startswith("system/")]


def journal_mode(path: Path) -> str:
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as database:
        return database.execute("PRAGMA journal_mode").fetchone()[0]


def rows_in_a_copy_of(database: Path, folder: Path) -> int:
    """Rows of table t in a copy of the database file alone (without its -wal log)."""
    import sqlite3

    folder.mkdir()
    copy = Path(shutil.copy(database, folder))
    with contextlib.closing(sqlite3.connect(copy)) as opened:
        if not opened.execute("SELECT 1 FROM sqlite_master WHERE name = 't'").fetchall():
            return 0  # not even the table: it is still in the log
        return opened.execute("SELECT count(*) FROM t").fetchone()[0]


def test_a_local_store_is_written_ahead_and_its_file_alone_holds_every_row(tmp_path):
    import sqlalchemy

    sqlite_wal.use_write_ahead_log()
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE t (x INTEGER)"))
    for x in range(20):  # one commit each, as a sweep's store writes
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("INSERT INTO t VALUES (:x)"), {"x": x})
    # The engine's connection stays open, as in a process that ends with os._exit.
    assert journal_mode(tmp_path / "store.db") == "wal"
    assert rows_in_a_copy_of(tmp_path / "store.db", tmp_path / "before") < 20
    sqlite_wal.checkpoint_all()
    assert rows_in_a_copy_of(tmp_path / "store.db", tmp_path / "after") == 20
    engine.dispose()


def test_a_store_on_a_network_file_system_keeps_its_rollback_journal(tmp_path, monkeypatch):
    import sqlalchemy

    monkeypatch.setattr(sqlite_wal, "file_system_type", lambda path: "nfs4")
    sqlite_wal.use_write_ahead_log()
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'shared.db'}")
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE t (x INTEGER)"))
    engine.dispose()
    assert journal_mode(tmp_path / "shared.db") == "delete"


def test_the_file_system_of_a_path_is_its_innermost_mount():
    mounts = (
        "/dev/vda / ext4 rw 0 0\n"
        "server:/export /home/me/shared\\040drive nfs4 rw 0 0\n"
        "tmpfs /tmp tmpfs rw 0 0\n"
    )
    of = lambda path: sqlite_wal.file_system_type(Path(path), mounts)  # noqa: E731
    assert of("/home/me/shared drive/project/logs/optuna.db") == "nfs4"
    assert of("/home/me/shared2/logs/optuna.db") == "ext4"
    assert of("/tmp/x.db") == "tmpfs"


def test_the_ui_start_marks_runs_of_dead_processes_killed_and_leaves_live_ones(
    tracking_uri: str, caplog: pytest.LogCaptureFixture
):
    import subprocess
    import sys
    from pathlib import Path

    from mlflow import MlflowClient

    from src.utils.tracking.runs.tags import PID_TAG, owner_tags
    from src.utils.tracking.store.mlflow_store import configure_mlflow, get_or_create_experiment
    from src.utils.tracking.store.stale_runs import kill_dead_runs_in_file

    client = MlflowClient(configure_mlflow())
    experiment_id = get_or_create_experiment(client, "model01")
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    dead_tags = {**owner_tags(), PID_TAG: gone.stdout.decode().strip()}
    dead_tags["mlflow.source.name"] = "src/model/model01/train.py"
    dead = client.create_run(experiment_id, run_name="killed", tags=dead_tags).info.run_id
    live = client.create_run(experiment_id, run_name="alive", tags=owner_tags()).info.run_id

    assert kill_dead_runs_in_file(Path(tracking_uri.removeprefix("sqlite:///"))) == 1
    assert client.get_run(dead).info.status == "KILLED"
    assert client.get_run(dead).data.tags["killed_reason"] == "its process is gone (killed)"
    assert client.get_run(live).info.status == "RUNNING"
    assert f"To continue it: python src/model/model01/train.py resume={dead}" in caplog.text
