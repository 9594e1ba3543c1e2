"""The MLflow parent run of a sweep: the trials nest under it, the study summary lands in it."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import optuna
from omegaconf import DictConfig

from src.utils.interrupts import interrupt_safe
from src.utils.tracking.runs.tags import run_tags
from src.utils.tracking.store import mlflow_store

log = logging.getLogger(__name__)


class SweepParentRun:
    """`with SweepParentRun(cfg, study_name, overrides) as parent:` around a sweep."""

    def __init__(self, cfg: DictConfig, study_name: str, overrides: list[str]) -> None:
        from mlflow import MlflowClient

        uri = mlflow_store.configure_mlflow(cfg.mlflow.tracking_uri)
        self.client = interrupt_safe(MlflowClient(uri))
        experiment_id = mlflow_store.get_or_create_experiment(self.client, cfg.experiment_name)
        tags = run_tags(
            entry_point="hydra multirun (Optuna sweeper)",
            overrides=list(overrides),
            model_kind="sweep",
            study_name=study_name,
            extra={"run_kind": "sweep", **cfg.mlflow.tags},
        )
        run = self.client.create_run(experiment_id, run_name=f"sweep-{study_name}", tags=tags)
        self.run_id: str = run.info.run_id
        self.metric: str = cfg.optimized_metric  # what the trials' values are
        self.failure: str | None = None  # why failed trials stopped the sweep: ends FAILED

    def __enter__(self) -> SweepParentRun:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> bool:
        mlflow_store.end_run(self.client, self.run_id, exc, self.failure)
        return False

    def log_study_summary(self, study: optuna.Study) -> None:
        """Best value and params, trial counts (complete, pruned, failed), and the plots."""
        from mlflow.entities import Metric, Param

        # Not the trials a worker asked for and gave up at once (sweeper: surplus).
        trials = [t for t in study.get_trials(deepcopy=False) if "surplus" not in t.user_attrs]
        counts = {state.name: 0 for state in optuna.trial.TrialState}
        for trial in trials:
            counts[trial.state.name] += 1
        summary: dict[str, Any] = {
            "study_name": study.study_name,
            "direction": study.direction.name.lower(),
            "trial_counts": {k: v for k, v in counts.items() if v},
        }
        # Pruned trials were stopped on purpose (the pruner), failed ones by an error.
        metrics = {"n_trials": float(len(trials)), "n_complete": float(counts["COMPLETE"])}
        metrics.update(n_pruned=float(counts["PRUNED"]), n_failed=float(counts["FAIL"]))
        params = {}
        if counts["COMPLETE"]:
            best = study.best_trial
            summary.update(best_value=best.value, best_params=best.params, best_trial=best.number)
            metrics["best_value"] = float(best.value)
            params = {f"best.{name}": str(value) for name, value in best.params.items()}
        now = int(time.time() * 1000)
        self.client.log_batch(  # one store write, not one per value
            self.run_id,
            metrics=[Metric(key, value, now, 0) for key, value in metrics.items()],
            params=[Param(key, value) for key, value in params.items()],
        )
        text = json.dumps(summary, indent=2, default=str)
        self.client.log_text(self.run_id, text, "study_summary.json")
        self._log_plots(study, counts["COMPLETE"])

    def register_champion(self, study: optuna.Study, experiment_name: str, metric: str) -> None:
        """Register the best trial's model and move `champion` if it is the best yet."""
        from src.utils.tracking.registry import register_best_trial

        try:
            version = register_best_trial(self.client, experiment_name, study, metric)
        except Exception:  # noqa: BLE001 - logged, not raised: the trials are done and logged
            log.exception("Model registry: registering the best trial failed")
            return
        if version is not None:
            self.client.set_tag(self.run_id, "champion_version", version.version)

    def _log_plots(self, study: optuna.Study, n_complete: int) -> None:
        from src.utils.sweep.history_plot import optimization_history_image

        history = "plots/optimization_history.png"
        if not n_complete:  # pruned and failed trials have no value: the plot would be empty
            self.client.set_tag(self.run_id, f"plot_skipped.{history}", "no completed trial")
            return
        self.client.log_image(self.run_id, optimization_history_image(study, self.metric), history)
        importances = "plots/param_importances.png"
        skipped = f"plot_skipped.{importances}"
        searched = {name for trial in study.trials for name in trial.distributions}
        if len(searched) < 2:
            # The only parameter's importance is 1 by definition; fANOVA would spend
            # ~0.4 s to draw one bar (the template's benchmarks/run.py).
            self.client.set_tag(self.run_id, skipped, "one parameter searched")
            return
        if n_complete < 2:
            return  # fANOVA needs two finished trials
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as optuna_plots

        try:
            axes = optuna_plots.plot_param_importances(study)
        except (ValueError, RuntimeError) as error:
            self.client.set_tag(self.run_id, skipped, str(error)[:500])
            return
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.tight_layout()
        self.client.log_figure(self.run_id, figure, importances)
        plt.close(figure)
