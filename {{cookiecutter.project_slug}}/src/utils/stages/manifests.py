"""Small JSON manifests that say what a stage produced from what: names, sizes, SHA-256. A
later stage compares the one it finds with the one it would write: equal means still valid."""

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def describe_files(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """{file name: {"bytes": size, "sha256": hash}} for each path."""
    return {p.name: {"bytes": p.stat().st_size, "sha256": sha256_of(p)} for p in paths}


def file_stats(paths: list[Path]) -> dict[str, list[int]]:
    """{file name: [size, modification time in ns]}: what changes when a file is rewritten."""
    return {p.name: [(stat := p.stat()).st_size, stat.st_mtime_ns] for p in paths}


def digest_of(data: Any) -> str:
    """A stable SHA-256 of any JSON-serialisable value (a config, a manifest)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write atomically, so a reader never sees half a manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    partial.replace(path)
