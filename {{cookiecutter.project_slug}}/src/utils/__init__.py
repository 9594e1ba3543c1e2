"""The project's infrastructure; the ML code lives in src/dataset, src/feature, src/model.

You normally leave this folder alone: an experiment's train.py, its model and data modules
and the YAML under config/ are what you edit. Dependencies point one way: experiments ->
tracking, sweep, training -> the shared basics.

- `paths`, `user_errors`, `console`, `interrupts`, `hydra_resolvers`: shared basics (where
  things live, one-message errors, quiet logs, Ctrl-C/SIGTERM, Hydra's resolvers);
  `entry_point`: everything a train.py does to its own process, with the gain of each.
- `stages/`: what the dataset, feature and model stages share (another stage's config,
  output manifests).
- `training/`: what every train.py uses around Lightning: how a job ends (one message per
  mistake, its closing lines), callbacks that stop a hopeless run, resuming, DDP.
- `tracking/`: MLflow: `store/` (where runs live, how the file is written, credentials kept
  out, runs of killed processes), `runs/` (one training run, what it records, which run to
  resume), and
  `registry` (the champion model).
- `sweep/`: the Optuna sweeper Hydra runs for `-m`, its trial loop, and the sweep's parent
  run with its plots.
- `commands/`: what a user runs (`python -m src.utils.commands.<name>`, scripts/*.sh,
  the notebooks): diary, export_runs, new_experiment, reproduce, model_loading, and the
  servers' `servers/`.
"""
