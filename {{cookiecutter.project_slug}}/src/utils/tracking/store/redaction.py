"""Keep credentials out of the store: secret-looking config keys and URL passwords become ***."""

import re
from collections.abc import Mapping
from typing import Any

# Keys whose values must never reach a tracking server as params (tokens in a URI, say).
_SECRET_WORDS = ("password", "passwd", "secret", "token", "api_key", "apikey", "credential")
REDACTED = "***"
_URL_CREDENTIALS = re.compile(r"(\w[\w+.-]*://)([^:/@\s]+):([^@/\s]+)@")


def looks_secret(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_WORDS)


def redact_url_credentials(value: str) -> str:
    """`postgresql://user:pw@host/db` -> `postgresql://user:***@host/db`."""
    return _URL_CREDENTIALS.sub(rf"\1\2:{REDACTED}@", value)


def redact_tree(value: Any, key: str = "") -> Any:
    """A copy of a nested config with secret-looking keys and URL passwords redacted."""
    if isinstance(value, Mapping):
        return {k: redact_tree(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(v, key) for v in value]
    if looks_secret(key) and value is not None:
        return REDACTED
    return redact_url_credentials(value) if isinstance(value, str) else value


def redact_override(override: str) -> str:
    """`db.password=x` -> `db.password=***`; URL passwords inside any value too."""
    key, sep, _ = override.partition("=")
    return f"{key}={REDACTED}" if sep and looks_secret(key) else redact_url_credentials(override)


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"a": {"b": 1}}` -> `{"a.b": "1"}`, with secret-looking values redacted."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, prefix=f"{name}."))
        else:
            flat[name] = REDACTED if looks_secret(str(key)) else redact_url_credentials(str(value))
    return flat
