"""The MLflow run of one training job: created named and tagged, always closed (FINISHED,
FAILED with the error, or KILLED on Ctrl-C). Created with MlflowClient, not the fluent API
(no global state shared by a sweep's trials), and handed to Lightning's MLFlowLogger by id.
In an in-process sweep the sweep's writer thread (see deferred) stores params, config,
environment, checkpoint, plots and model while the trial trains and the next one starts.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import optuna
import torch
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, OmegaConf

from src.utils.interrupts import interrupt_safe
from src.utils.paths import LIGHTNING_LOGS_DIR, PROJECT_ROOT
from src.utils.tracking.registry import MODEL_ARTIFACT
from src.utils.tracking.runs import environment
from src.utils.tracking.runs.deferred_writes import RunWrites, active_writer
from src.utils.tracking.runs.resume import disk_full, job_overrides
from src.utils.tracking.runs.system_metrics import SystemMetrics
from src.utils.tracking.runs.tags import run_tags
from src.utils.tracking.store import mlflow_store
from src.utils.tracking.store.redaction import flatten_config, redact_override, redact_tree

# Keys the sweeper fills in; they describe the run, they are not hyperparameters.
_SWEEPER_OVERRIDE_PREFIX = "sweep."


class RunOwnedMLFlowLogger(MLFlowLogger):
    """Lightning's MLflow logger for a run that `TrainingRun` creates, writes and ends (once:
    Lightning would end it FINISHED after `fit` and `test`, before the test metrics, the
    checkpoint and the model). In a sweep its metrics go through the writer thread."""

    def __init__(self, *, experiment_id: str, submit: Callable | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The run and its experiment are known: no store round trip to look them up.
        self._experiment_id, self._initialized = experiment_id, True
        self._submit = submit
        # Lightning writes each step's metrics through this client (see interrupts).
        self._mlflow_client = interrupt_safe(self._mlflow_client)

    def finalize(self, status: str = "success") -> None:
        return None

    def log_hyperparams(self, params: Any) -> None:
        # TrainingRun logs the whole config; Lightning would log hparams after fit and test.
        return None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self._submit is None:
            return super().log_metrics(metrics, step)
        from mlflow.entities import Metric

        # Read now (the values and their time), written by the writer thread.
        now, numbers = int(time.time() * 1000), metrics.items()
        batch = [Metric(k, float(v), now, step or 0) for k, v in numbers if not isinstance(v, str)]
        write = self._mlflow_client.log_batch
        self._submit(", ".join(metrics), lambda: write(self.run_id, metrics=batch))


class TrainingRun:
    """Create, log into and close one MLflow run for a training job."""

    def __init__(self, cfg: DictConfig, entry_point: str, model_kind: str, resume: Any = None):
        """`resume`: a training.resume.ResumePoint, whose run this one continues."""
        from mlflow import MlflowClient

        self._experiment_name, sweep, self._resume = cfg.experiment_name, cfg.sweep, resume
        # `mlflow run` (MLproject) made a run for this process; sweep trials get their own.
        self._project_run = environment.mlflow_project_run() if sweep.trial_number is None else None
        self.uri = mlflow_store.configure_mlflow(cfg.mlflow.tracking_uri)
        self.client = interrupt_safe(MlflowClient(self.uri))
        self.experiment_id = mlflow_store.get_or_create_experiment(self.client, cfg.experiment_name)
        overrides = job_overrides()
        script = Path(entry_point).resolve()  # the train.py: tagged relative to the project
        if script.is_relative_to(PROJECT_ROOT):
            entry_point = script.relative_to(PROJECT_ROOT).as_posix()
        trial = sweep.trial_number
        now = f"run-{datetime.now():%Y%m%d-%H%M%S}"
        self.run_name = now if trial is None else f"trial-{int(trial):03d}"
        self._tags = run_tags(
            entry_point=entry_point,
            overrides=[o for o in overrides if not o.startswith(_SWEEPER_OVERRIDE_PREFIX)],
            model_kind=model_kind,
            study_name=sweep.study_name,
            trial_number=sweep.trial_number,
            parent_run_id=sweep.parent_run_id,
            extra=cfg.mlflow.tags,
        )
        self._resolved = OmegaConf.to_container(cfg, resolve=True)
        # What is written to the store never holds credentials (see redaction).
        self._resolved_yaml = OmegaConf.to_yaml(OmegaConf.create(redact_tree(self._resolved)))
        self._overrides = [redact_override(o) for o in overrides]
        self.run_id = ""
        self._writer = active_writer()  # the sweep's writer thread, if any (see deferred)
        self._writes: RunWrites | None = None
        every = cfg.mlflow.system_metrics and float(cfg.mlflow.system_metrics_interval)
        self._system_metrics_interval, self._system_metrics = every or None, None
        self._last_metrics: list[Any] = []  # see log_metrics

    def __enter__(self) -> TrainingRun:
        if self._resume is not None:
            self.run_id = self._reopen(self._resume)
        else:
            self.run_id = self._adopt_or_create(self._project_run, self.run_name, self._tags)
        # train.py's best.ckpt and last.ckpt: deleted once FINISHED (the best is in MLflow).
        self.checkpoint_dir = LIGHTNING_LOGS_DIR / self._experiment_name / self.run_id
        if self._writer is not None:
            self._writes = self._writer.open_run(self.client, self.run_id)
        # From here on, a signal or error must end the run (KILLED, FAILED), never RUNNING.
        try:
            self._submit("params", self._log_params)
            # Not MLflow's async logging (up to 1 s per run to flush, benchmarks/run.py): in a
            # sweep the writer thread takes the metrics; alone, they are written at once.
            self.logger = RunOwnedMLFlowLogger(
                experiment_name=self._experiment_name,
                tracking_uri=self.uri,
                run_id=self.run_id,
                experiment_id=self.experiment_id,
                submit=self._submit if self._writes is not None else None,
            )
            self.log_text(self._resolved_yaml, "config/config.yaml")
            self.log_text("\n".join(self._overrides) + "\n", "config/overrides.txt")
            self.log_environment()
            if (every := self._system_metrics_interval) is not None:
                self._system_metrics = SystemMetrics(self.run_id, self.uri, every)
                self._system_metrics.start()
        except BaseException as error:
            self.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def _reopen(self, point: Any) -> str:
        """The killed run back to RUNNING, tagged with when and how often it was resumed."""
        run = self.client.get_run(point.run_id)
        self.run_name = run.info.run_name
        tags = {k: v for k, v in self._tags.items() if k.startswith(("process.", "mlflow.parent"))}
        times = int(run.data.tags.get("resumed", 0)) + 1
        tags.update(resumed=str(times), resumed_at=f"{datetime.now():%Y-%m-%dT%H:%M:%S}")
        self.client.update_run(point.run_id, status="RUNNING")
        self.run_id = point.run_id
        self._log_tags(tags)
        for stale in {"error", "killed_reason"} & set(run.data.tags):
            self.client.delete_tag(point.run_id, stale)
        return point.run_id

    def _log_params(self) -> None:
        from mlflow.entities import Param

        if self._resume is not None:
            return  # logged when the run started; MLflow refuses to change a param
        # `mlflow run` may have logged its -P parameters into the adopted run already.
        logged = self.client.get_run(self.run_id).data.params if self._project_run else {}
        flat = flatten_config(self._resolved).items()
        params = [Param(k, v) for k, v in flat if k not in logged]
        for start in range(0, len(params), 100):  # MLflow's batch limit
            self.client.log_batch(self.run_id, params=params[start : start + 100])

    def _adopt_or_create(
        self, project_run: environment.MlflowProjectRun | None, run_name: str, tags: dict
    ):
        """A new run; under `mlflow run`, the run it made when it logs into this store and
        experiment, else a child of it (this store) or a run linked to it by tags."""
        from mlflow.entities import RunTag

        if project_run is not None:
            run_id = project_run.run_id
            try:
                existing = self.client.get_run(run_id)
            except Exception:  # noqa: BLE001 - not in this store
                existing = None
            if existing is None:
                tags = {**tags, "mlflow_project.run_id": run_id}
                tags["mlflow_project.tracking_uri"] = str(project_run.tracking_uri)
            elif existing.info.experiment_id == self.experiment_id:
                self.client.update_run(run_id, name=run_name)
                theirs = {k for k in existing.data.tags if k.startswith("mlflow.source.")}
                mine = [RunTag(k, v) for k, v in tags.items() if k not in theirs]
                self.client.log_batch(run_id, tags=mine)
                return run_id
            else:
                tags = {**tags, "mlflow.parentRunId": run_id}
        return self.client.create_run(self.experiment_id, run_name=run_name, tags=tags).info.run_id

    def log_environment(self) -> None:
        """Python, torch and CUDA versions as env.* tags; the installed packages as a file."""
        from mlflow.entities import RunTag

        tags = [RunTag(k, v) for k, v in environment.environment_tags().items()]
        self._submit("env tags", lambda: self.client.log_batch(self.run_id, tags=tags))
        self.log_text(environment.installed_packages(), "environment/requirements.txt")

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        try:
            if self._system_metrics is not None:
                # Its last sample, written before the run ends (in a sweep: by the writer).
                self._submit("system metrics", self._system_metrics.stop)
        finally:
            self._end(exc_type, exc, tb)
        how = f"continue with resume={self.run_id}"
        if "trial_number" in self._tags:
            how = "run the same sweep command again: the trial continues"
        if (full := disk_full(exc, self.checkpoint_dir, how)) is not None:
            raise full from exc
        return False

    def _end(self, exc_type: Any, exc: BaseException | None, tb: TracebackType | None) -> None:
        # A pruned trial: a decision, not an error; FINISHED, tagged for the UI's filters.
        pruned_tags: dict[str, str] = {}
        if isinstance(exc, optuna.TrialPruned):  # its .epoch: set by src.utils.sweep.pruning
            pruned_tags = {"pruned": "true", "pruned_at_epoch": str(getattr(exc, "epoch", None))}
            exc_type, exc, tb = None, None, None
        trace = "".join(traceback.format_exception(exc_type, exc, tb)) if exc else ""
        if exc is None and (folder := self.checkpoint_dir).exists():  # after the best's upload
            self._submit("local checkpoints", lambda: shutil.rmtree(folder, ignore_errors=True))
        try:
            if pruned_tags:
                self._submit("pruned tags", lambda: self._log_tags(pruned_tags))
            if exc is not None and self._writes is None:  # the writer stores it with the end
                self.log_text(trace, "error.txt")
        finally:
            if self._writes is not None:
                self._writer.end(self._writes, exc, trace)
            else:
                mlflow_store.end_run(self.client, self.run_id, exc)

    def _log_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def _submit(self, name: str, write: Callable[[], Any]) -> None:
        """Write now, or queue for the sweep's writer thread (`name`: what it writes)."""
        if self._writes is None:
            write()
        else:
            self._writer.write(self._writes, name, write)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._submit(artifact_file, lambda: self.client.log_text(self.run_id, text, artifact_file))

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(datetime.now().timestamp() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self._last_metrics = batch  # a model logged next is linked to them
        self._submit(", ".join(metrics), lambda: self.client.log_batch(self.run_id, metrics=batch))

    def log_image(self, image: Any, artifact_file: str) -> None:
        write = self.client.log_image
        self._submit(artifact_file, lambda: write(self.run_id, image, artifact_file=artifact_file))

    def log_file(self, path: str | Path, artifact_path: str | None = None) -> None:
        write = self.client.log_artifact
        name = f"{artifact_path or '.'}/{Path(path).name}"
        self._submit(name, lambda: write(self.run_id, str(path), artifact_path))

    def log_data_versions(self, dataset_config: Any, features: Any) -> None:
        """Which dataset and feature versions trained this run: hashes as tags, the
        manifests as artifacts, and MLflow's dataset inputs (the UI's "Datasets used")."""
        manifest, digest = features.manifest, features.digest
        self._submit("data versions", lambda: self._log_data(dataset_config, manifest, digest))

    def _log_data(self, dataset_config: Any, manifest: dict, feature_digest: str) -> None:
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag

        from src.utils.stages.manifests import digest_of

        dataset_manifest = manifest["inputs"]["dataset"]
        dataset_digest = digest_of(dataset_manifest)
        tags = {"data.dataset": dataset_manifest["stage"], "data.dataset_sha256": dataset_digest}
        tags.update({"data.feature": manifest["stage"], "data.feature_sha256": feature_digest})
        self._log_tags(tags)
        self.client.log_dict(self.run_id, manifest, "data/feature_manifest.json")
        inputs = []
        for name, path, digest, context in (
            (dataset_manifest["stage"], dataset_config["data_dir"], dataset_digest, "source"),
            (manifest["stage"], manifest.get("folder", ""), feature_digest, "train"),
        ):
            with warnings.catch_warnings():
                # MLflow registers its local-file source twice: "interpreted in multiple ways".
                warnings.simplefilter("ignore", UserWarning)
                source = resolve_dataset_source(str(path) or ".")
            dataset = MetaDataset(source=source, name=name, digest=digest[:16])
            tag = InputTag(key="mlflow.data.context", value=context)
            inputs.append(DatasetInput(dataset=dataset._to_mlflow_entity(), tags=[tag]))
        self.client.log_inputs(self.run_id, datasets=inputs)

    def log_pytorch_model(self, model: torch.nn.Module, input_example: torch.Tensor) -> None:
        """Log `model` as an MLflow pytorch model with signature and input example; pickled
        (MLflow's `pt2` loads back as a GraphModule), requirements given, not inferred (a
        subprocess re-imports the model: seconds)."""
        model = model.eval()
        example = input_example.detach().cpu().clone()  # not a view that keeps the test set
        linked = self._last_metrics
        self._submit(MODEL_ARTIFACT, lambda: self._save_model(model, example, linked))

    def _save_model(self, model: torch.nn.Module, example: torch.Tensor, linked: list[Any]) -> None:
        """The LoggedModel `runs:/<run_id>/model` resolves to, with the run's params, source
        tags and last metrics; `mlflow.pytorch.log_model` would also open and end the run and
        read every param and metric back: ~60 ms more CPU per 1-batch trial (two cores)."""
        import mlflow
        from mlflow.entities import LoggedModelOutput, Metric
        from mlflow.models import Model, infer_signature

        from src.utils.entry_point import hidden_modules

        # Not its Lightning autologging (unused): it imports pytorch_lightning, a second
        # Lightning (~250 modules, ~60 ms, ~6 MB); mlflow.pytorch.autolog() still loads it.
        with hidden_modules(["mlflow.pytorch._lightning_autolog"]):
            import mlflow.pytorch

        with torch.no_grad():
            output = model(example).cpu().numpy()
        tags = {k: v for k, v in self._tags.items() if k.startswith(("mlflow.source", "mlflow.u"))}
        logged = self.client.create_logged_model(
            experiment_id=self.experiment_id,
            name=MODEL_ARTIFACT,
            source_run_id=self.run_id,
            params=dict(flatten_config(self._resolved)),
            tags=tags,
        )
        pins = [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"]
        try:
            with tempfile.TemporaryDirectory() as folder, _no_requirement_scan():
                path = Path(folder, MODEL_ARTIFACT)
                mlflow_model = Model(
                    artifact_path=logged.artifact_location,
                    run_id=self.run_id,
                    model_uuid=logged.model_id,
                    model_id=logged.model_id,
                )
                mlflow.pytorch.save_model(
                    model,
                    path,
                    mlflow_model=mlflow_model,
                    serialization_format="pickle",
                    signature=infer_signature(example.numpy(), output),
                    input_example=example.numpy(),
                    pip_requirements=pins,
                )
                _check_serving_once(type(model), path, example)
                self.client.log_model_artifacts(logged.model_id, str(path))
        except BaseException:
            self.client.finalize_logged_model(logged.model_id, "FAILED")
            raise
        self.client.finalize_logged_model(logged.model_id, "READY")
        # Linked last: a run with a model output always has the model's files.
        step = max((m.step for m in linked), default=0)
        self.client.log_outputs(self.run_id, [LoggedModelOutput(logged.model_id, step)])
        with_model = [Metric(m.key, m.value, m.timestamp, m.step, logged.model_id) for m in linked]
        if with_model:
            self.client.log_batch(self.run_id, metrics=with_model)


@contextlib.contextmanager
def _no_requirement_scan() -> Iterator[None]:
    """Skip MLflow's check of the model's requirements against the installed packages: they
    are this environment's own versions, and the check maps every installed distribution's
    modules (seconds per trial, benchmarks/run.py). Loading elsewhere still checks."""
    import mlflow.pyfunc
    from mlflow.utils import environment as mlflow_environment

    name = "warn_dependency_requirement_mismatches"
    modules = [m for m in (mlflow_environment, mlflow.pyfunc) if hasattr(m, name)]
    originals = [getattr(m, name) for m in modules]
    for module in modules:
        setattr(module, name, lambda *args, **kwargs: None)
    try:
        yield
    finally:
        for module, original in zip(modules, originals, strict=True):
            setattr(module, name, original)


# Model classes whose saved model has been loaded back and run in this process.
_SERVING_CHECKED: set[type] = set()


def _check_serving_once(model_class: type, path: Path, example: torch.Tensor) -> None:
    """Load a saved model back as `mlflow models serve` does and predict its input example;
    warn, as MLflow does, if that fails. Once per class: ~80 ms of CPU each (two cores)."""
    import mlflow.pyfunc

    if model_class in _SERVING_CHECKED:
        return
    _SERVING_CHECKED.add(model_class)
    try:
        mlflow.pyfunc.load_model(str(path)).predict(example.numpy())
    except Exception as error:  # noqa: BLE001 - a warning, as MLflow gives it
        warnings.warn(
            f"The logged {model_class.__name__} did not predict its input example when "
            f"loaded back, so `mlflow models serve` may fail on it: {error}",
            stacklevel=1,
        )
