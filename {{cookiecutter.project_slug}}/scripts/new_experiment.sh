#!/usr/bin/env bash
# Start a new numbered experiment: copy src/<stage>/<from>/ and config/<stage>/<from>/,
# rename what is inside, and open diary/<new_name>.md.
#   bash scripts/new_experiment.sh model model02 [--from model01]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# This project's `src`, whatever other project is installed in the environment.
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
# Standard library only: any Python 3 works, inside or outside the project environment.
python="$(command -v python || command -v python3)"
exec "$python" -m src.utils.commands.new_experiment "$@"
