"""Commands a user runs (`python -m src.utils.commands.<name>`, scripts/*.sh, notebooks);
`servers/` holds the ones that start a server (MLflow UI and tracking server, Optuna
Dashboard, a model over REST).

Standard library only at import time: scripts/new_experiment.sh runs before poetry install.
"""
