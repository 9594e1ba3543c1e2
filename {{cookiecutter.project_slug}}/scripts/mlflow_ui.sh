#!/usr/bin/env bash
# The MLflow UI on this project's store (--help). No bash: python -m as below.
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1 # `python -m` imports this project's `src`
exec "$(command -v python || echo python3)" -m src.utils.commands.servers.mlflow_ui "$@"
