"""The MLflow store: where it is, how its SQLite file is written, what never enters it
(credentials), and the runs that killed processes left in it."""
