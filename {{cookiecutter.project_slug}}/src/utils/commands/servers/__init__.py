"""The commands behind scripts/*.sh that start or manage a server (`common`: what they share);
`python -m src.utils.commands.servers.<name>` from the project folder runs them on any OS."""
