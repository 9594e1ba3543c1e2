"""Refuse bad cookiecutter answers before any file of the project is written.

Cookiecutter renders this file with Jinja and runs it; the tests import it and call
the functions directly. The answers arrive as one JSON document at the bottom, inside a
raw string, so no answer (quotes, backslashes, Japanese) can break the Python syntax.
"""

from __future__ import annotations

import json
import keyword
import re
import sys

SUPPORTED_PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
SUPPORTED_LICENSES = ("MIT", "BSD-3-Clause", "Apache-2.0", "none")
SUPPORTED_LANGUAGES = ("en", "ja")

# A lowercase name that is at once a valid import name and a normalised distribution name.
_SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
# Deliberately simple: one @, no spaces, a dot in the domain. Catches typos, not RFC 5322.
_EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
# The generated project ships its code as a top-level package called `src`.
_RESERVED_NAMES = frozenset({"src"})


def suggest_slug(text: str) -> str:
    """Turn free text into the closest valid slug (used in error messages)."""
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not slug or not slug[0].isalpha():
        slug = f"project_{slug}".rstrip("_")
    if keyword.iskeyword(slug) or slug in sys.stdlib_module_names or slug in _RESERVED_NAMES:
        slug = f"{slug}_project"
    return slug


def validate_slug(slug: str) -> str | None:
    """Return an error message for a bad project slug, or None when it is fine."""
    if not _SLUG_PATTERN.match(slug):
        return (
            f"project_slug {slug!r} is not a valid lowercase package name: use lowercase "
            f"letters, digits and underscores, starting with a letter. "
            f"Try: {suggest_slug(slug)!r}"
        )
    if keyword.iskeyword(slug):
        return f"project_slug {slug!r} is a Python keyword. Try: {slug + '_project'!r}"
    if slug in sys.stdlib_module_names:
        return (
            f"project_slug {slug!r} would shadow the standard-library module {slug!r}. "
            f"Try: {slug + '_project'!r}"
        )
    if slug in _RESERVED_NAMES:
        return (
            f"project_slug {slug!r} would shadow the project's own top-level `src` package. "
            f"Try: {slug + '_project'!r}"
        )
    return None


def validate_email(email: str) -> str | None:
    """Return an error message for a malformed e-mail address, or None."""
    if not _EMAIL_PATTERN.match(email):
        return f"author_email {email!r} is not an e-mail address. Type it as name@example.com"
    return None


def validate_python_version(version: str) -> str | None:
    """Return an error message for an unsupported Python version, or None."""
    if version not in SUPPORTED_PYTHON_VERSIONS:
        return (
            f"python_version {version!r} is not supported. "
            f"Type one of: {', '.join(SUPPORTED_PYTHON_VERSIONS)}"
        )
    return None


def validate_choice(name: str, value: str, allowed: tuple[str, ...]) -> str | None:
    """Return an error message for a value outside a fixed list, or None."""
    if value not in allowed:
        return f"{name} {value!r} is not one of: {', '.join(allowed)}"
    return None


def validate_answers(answers: dict[str, str]) -> list[str]:
    """Every problem with the answers, in prompt order; empty when all are fine."""
    checks = [
        validate_slug(answers["project_slug"]),
        validate_email(answers["author_email"]),
        validate_python_version(answers["python_version"]),
        validate_choice("license", answers["license"], SUPPORTED_LICENSES),
        validate_choice("readme_language", answers["readme_language"], SUPPORTED_LANGUAGES),
        validate_choice("init_git", answers["init_git"], ("yes", "no")),
    ]
    return [message for message in checks if message]


def main(answers: dict[str, str]) -> int:
    errors = validate_answers(answers)
    for message in errors:
        print(f"ERROR: {message}", file=sys.stderr)
    if errors:
        print(
            "Nothing was generated. Run cookiecutter again with the fixed answers.", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(r"""{{ cookiecutter | jsonify }}""")))
