"""A new trial's user attributes (its fixed parameters and owner, see stale_runs), written
in one transaction: Optuna writes each as one of its own (~2 ms each on SQLite, more beside
the writer thread). RDB storages get Optuna's own statement per attribute in one
transaction; other storages (in-memory, journal files) one call each.
"""

from collections.abc import Mapping
from typing import Any

import optuna


def set_user_attrs(trial: optuna.trial.Trial, attrs: Mapping[str, Any]) -> None:
    """`trial.set_user_attr(key, value)` for each of `attrs`, in one storage transaction."""
    storage = trial.storage
    backend = getattr(storage, "_backend", storage)  # Optuna caches an RDBStorage's trials
    write = _one_transaction(backend)
    if write is None or len(attrs) < 2:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    write(trial._trial_id, attrs)
    cached = getattr(trial, "_cached_frozen_trial", None)  # what trial.user_attrs reads
    if cached is not None:
        cached.user_attrs.update(attrs)


def _one_transaction(backend: Any) -> Any:
    """A function writing many user attributes in one transaction; None when this Optuna
    version's RDB storage lacks the pieces (then each attribute is set on its own)."""
    from optuna.storages import RDBStorage

    try:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
    except ImportError:
        return None
    set_attr = getattr(backend, "_set_trial_attr_without_commit", None)
    if not isinstance(backend, RDBStorage) or set_attr is None:
        return None

    def write(trial_id: int, attrs: Mapping[str, Any]) -> None:
        with _create_scoped_session(backend.scoped_session, True) as session:
            for key, value in attrs.items():
                set_attr(session, models.TrialUserAttributeModel, trial_id, key, value)

    return write
