from src.utils.tracking.store.redaction import (
    REDACTED,
    flatten_config,
    redact_override,
    redact_tree,
)


def test_secret_looking_keys_and_url_passwords_never_reach_params():
    config = {
        "db": {"password": "hunter2", "api_token": "abc", "host": "db.example"},
        "storage": "postgresql+psycopg://alice:s3cret@db.example:5432/optuna",
        "plain": "http://example.com/path",
    }
    flat = flatten_config(config)
    assert flat["db.password"] == REDACTED and flat["db.api_token"] == REDACTED
    assert flat["db.host"] == "db.example"
    assert flat["storage"] == f"postgresql+psycopg://alice:{REDACTED}@db.example:5432/optuna"
    assert flat["plain"] == "http://example.com/path"
    assert "s3cret" not in str(redact_tree(config)) and "hunter2" not in str(redact_tree(config))


def test_overrides_are_redacted_too():
    assert redact_override("+db.password=hunter2") == f"+db.password={REDACTED}"
    storage = "hydra.sweeper.storage=postgresql://bob:pw@host/db"
    assert redact_override(storage) == f"hydra.sweeper.storage=postgresql://bob:{REDACTED}@host/db"
    assert redact_override("learning_rate=0.001") == "learning_rate=0.001"


def test_the_team_logins_settings_are_secret_looking():
    # scripts/mlflow_server.sh --auth and the clients' login (.env.example)
    for key in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_TRACKING_PASSWORD"):
        assert redact_override(f"+{key}=hunter2") == f"+{key}={REDACTED}"
    assert flatten_config({"MLFLOW_FLASK_SERVER_SECRET_KEY": "k"}) == {
        "MLFLOW_FLASK_SERVER_SECRET_KEY": REDACTED
    }
