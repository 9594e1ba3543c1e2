"""Commands a user runs (`python -m src.utils.commands.<name>`, scripts/*.sh, notebooks).

Standard library only at import time: scripts/new_experiment.sh runs before poetry install.
"""
