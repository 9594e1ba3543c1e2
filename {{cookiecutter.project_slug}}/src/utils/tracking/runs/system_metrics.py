"""A run's CPU, memory, disk, network and GPU use over time: MLflow's `system/*` metrics (psutil,
nvidia-ml-py), sampled in a thread. MLflow publishes only whole intervals, so the samples since
the last one (all of them in a run shorter than one interval) are logged when the run stops."""

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)
# MLflow's `finish()` joins its sampling thread without a limit; a signalled run must still end.
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
            monitor.collect_metrics()  # since the last whole interval
            if metrics := monitor.aggregate_metrics():
                monitor.publish_metrics(metrics)
                monitor.mlflow_logger.flush()
        except Exception as error:  # noqa: BLE001 - the run's own results matter more
            log.warning(f"Could not log the last system metrics sample: {error}")
