"""How a training job ends, whichever way it ends: what a train.py's `main` wraps around
`train(cfg)`, and the closing lines of a single run."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from src.utils.console import quiet_third_party_noise
from src.utils.interrupts import sigterm_as_interrupt
from src.utils.training.distributed import is_rank_zero, quiet_unless_rank_zero
from src.utils.user_errors import report_as_message

UI_URL = "http://127.0.0.1:5000"  # scripts/mlflow_ui.sh's default address


@contextmanager
def training_job(*user_errors: type[BaseException]) -> Iterator[None]:
    """`user_errors` become one message and exit status 2 (in a sweep: a FAILED trial);
    Ctrl-C and SIGTERM end the run KILLED; under DDP only rank 0 speaks."""
    quiet_third_party_noise()
    with ExitStack() as stack:
        stack.enter_context(report_as_message(*user_errors))
        stack.enter_context(sigterm_as_interrupt())
        stack.enter_context(quiet_unless_rank_zero(*user_errors))
        yield


def print_run_summary(cfg: Any, run: Any, metrics: dict[str, float]) -> None:
    """A single run's last lines: its name and id, its test metrics, and where to go next
    (a sweep ends with its best trial instead)."""
    if cfg.sweep.trial_number is not None or not is_rank_zero():
        return
    scores = ", ".join(f"{name} {value:.4f}" for name, value in sorted(metrics.items()))
    base = run.uri.rstrip("/") if run.uri.startswith("http") else UI_URL
    link = f"{base}/#/experiments/{run.experiment_id}/runs/{run.run_id}"
    if base == UI_URL:
        link += "  (after: bash scripts/mlflow_ui.sh)"
    print(
        f"\nRun {run.run_name} (run id {run.run_id}) of experiment {cfg.experiment_name} "
        f"finished: {scores}\n  in the UI:  {link}\n  the model:  notebooks/load_model.ipynb "
        f"with experiment_name={cfg.experiment_name}, run_id={run.run_id}",
        flush=True,
    )
