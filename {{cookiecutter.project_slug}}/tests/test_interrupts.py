"""Ctrl-C and SIGTERM stop a run between database writes, never inside one (interrupts.py)."""

from __future__ import annotations

import copy
import os
import signal
import time

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from src.utils.interrupts import interrupt_safe, sigterm_as_interrupt
from src.utils.tracking.store.mlflow_store import configure_mlflow, end_run


class SignalledWrite:
    """A database write during which SIGTERM arrives `signals` times."""

    def __init__(self, client: MlflowClient, run_id: str, signals: int) -> None:
        self.client, self.run_id, self.signals = client, run_id, signals

    def log_loss(self, value: float) -> str:
        for _ in range(self.signals):
            os.kill(os.getpid(), signal.SIGTERM)  # handled before the next line runs
        metric = Metric("loss", value, int(time.time() * 1000), 0)
        self.client.log_batch(self.run_id, metrics=[metric])
        return "written"


@pytest.fixture
def run_id(tracking_uri: str) -> str:
    client = MlflowClient(configure_mlflow())
    return client.create_run(client.create_experiment("interrupts")).info.run_id


def test_a_signal_during_a_write_stops_the_run_once_the_write_is_done(tracking_uri, run_id):
    client = MlflowClient(tracking_uri)
    with sigterm_as_interrupt(), pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        interrupt_safe(SignalledWrite(client, run_id, signals=1)).log_loss(0.5)
    assert client.get_run(run_id).data.metrics == {"loss": 0.5}
    # The run can still be ended: no connection was left holding the database's lock.
    started = time.monotonic()
    assert end_run(client, run_id, KeyboardInterrupt("received signal SIGTERM")) == "KILLED"
    assert time.monotonic() - started < 5


def test_a_second_signal_during_a_write_interrupts_at_once(tracking_uri, run_id):
    client = MlflowClient(tracking_uri)
    with sigterm_as_interrupt(), pytest.raises(KeyboardInterrupt):
        interrupt_safe(SignalledWrite(client, run_id, signals=2)).log_loss(0.5)
    assert client.get_run(run_id).data.metrics == {}


def test_outside_a_write_a_signal_interrupts_at_once(tracking_uri, run_id):
    client = MlflowClient(tracking_uri)
    with sigterm_as_interrupt(), pytest.raises(KeyboardInterrupt):
        SignalledWrite(client, run_id, signals=1).log_loss(0.5)
    assert client.get_run(run_id).data.metrics == {}


def test_the_previous_signal_handlers_come_back_afterwards():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with sigterm_as_interrupt():
        assert signal.getsignal(signal.SIGTERM) is not before[0]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_safe_client_passes_attributes_through_and_can_be_copied(tracking_uri):
    client = interrupt_safe(MlflowClient(configure_mlflow()))
    assert client.tracking_uri == tracking_uri
    assert copy.deepcopy(client).tracking_uri == tracking_uri
