"""Trimmed copies of the vendors' published schemas, kept in the project so tests need nothing else.

Layout: tests/contracts/<vendor>/<name>.json, each a JSON Schema (OpenAPI 3.x schema objects are
accepted as they are), and tests/contracts/<vendor>/SOURCE.md naming where every file was cut
from (repository, path, commit or the vendor's page). `$ref`s must point inside the same file
(`#/$defs/...` or `#/components/schemas/...`).

    from tests.contracts import assert_matches
    assert_matches(response.json(), "asaas", "payment")
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS31Validator

CONTRACTS_DIR = Path(__file__).resolve().parent


@cache
def load_schema(vendor: str, name: str) -> dict[str, Any]:
    """The schema `name` of `vendor`, as stored under tests/contracts/."""
    path = CONTRACTS_DIR / vendor / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def contract_errors(instance: Any, vendor: str, name: str) -> list[str]:
    """Every way `instance` departs from the schema, as readable lines (empty when it matches)."""
    validator = OAS31Validator(load_schema(vendor, name))
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    ]


def assert_matches(instance: Any, vendor: str, name: str) -> None:
    """Fail with every departure when `instance` does not match the vendor's schema `name`."""
    errors = contract_errors(instance, vendor, name)
    assert not errors, f"{vendor}/{name} contract violated:\n" + "\n".join(errors)
