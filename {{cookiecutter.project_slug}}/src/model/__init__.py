"""Stage 3, the experiments: one folder per experiment (model01, ...) with its train.py, model
and config schema, yours to edit and copy (`bash scripts/new_experiment.sh model model02`)."""
