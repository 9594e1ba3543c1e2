"""Stage 2, the features: one folder per version (feature01, ...), yours to edit and copy
(`bash scripts/new_experiment.sh feature feature02`); old folders stay runnable as they were."""
