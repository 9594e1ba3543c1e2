"""Stage 1, the data: one folder per version of it (dataset01, ...), yours to edit and copy
(`bash scripts/new_experiment.sh dataset dataset02`); old folders stay runnable as they were."""
