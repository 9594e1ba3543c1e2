"""CPU, memory, disk, network and GPU use of a run over time: MLflow's system metrics.

MLflow samples every `interval` seconds in a thread and logs `system/*` metrics (psutil;
NVIDIA GPUs through nvidia-ml-py when there are any), shown in the run's "System metrics"
tab. Its monitor publishes only whole intervals, so a run shorter than one interval would
have none: the samples taken since the last publication are logged when the run stops.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)
# How long stopping may wait for MLflow's sampling thread. Its `finish()` joins without a
# limit, and a run stopped by a signal must still end (KILLED) rather than wait forever.
STOP_TIMEOUT_S = 10.0


class SystemMetrics:
    """`start()` when the run starts, `stop()` before it ends (idempotent)."""

    def __init__(self, run_id: str, tracking_uri: str, interval: float) -> None:
        self._monitor: Any = None
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            self._monitor = SystemMetricsMonitor(
                run_id, sampling_interval=interval, tracking_uri=tracking_uri
            )
        except Exception as error:  # noqa: BLE001 - e.g. psutil missing: train without them
            log.warning(f"System metrics are off for this run: {error}")

    def start(self) -> None:
        if self._monitor is not None:
            self._monitor.start()

    def stop(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is None:
            return
        finishing = threading.Thread(target=monitor.finish, name="system-metrics-stop", daemon=True)
        finishing.start()
        finishing.join(STOP_TIMEOUT_S)
        if finishing.is_alive():
            log.warning(
                f"System metrics sampling did not stop within {STOP_TIMEOUT_S:.0f} s; "
                "the run ends without its last samples"
            )
            return
        try:
            # The samples since the last full interval (all of them in a short run).
            monitor.collect_metrics()
            metrics = monitor.aggregate_metrics()
            if metrics:
                monitor.publish_metrics(metrics)
                monitor.mlflow_logger.flush()
        except Exception as error:  # noqa: BLE001 - the run's own results matter more
            log.warning(f"Could not log the last system metrics sample: {error}")
