"""Which keys of a sandbox answer its vendor's schema does not declare.

`tests.contracts.assert_matches` checks an answer against the vendor's schema, but the vendors'
schemas allow unknown keys almost everywhere, so an invented key (one the vendor never sends)
would pass it. `assert_declares_every_key` closes that gap for the sandbox's own answers: every
key must be a property the trimmed schema declares (or sit under an `additionalProperties`
schema, such as Pipedrive's `custom_fields`), so the sandbox says nothing its vendor would not.
"""

from __future__ import annotations

from typing import Any

from tests.contracts import assert_matches, load_schema


def _resolve(schema: Any, root: dict[str, Any]) -> Any:
    while isinstance(schema, dict) and "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _branches(schema: Any, root: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema and every allOf/anyOf/oneOf branch below it, resolved."""
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return []
    found = [schema]
    for keyword in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(keyword, []):
            found.extend(_branches(branch, root))
    return found


def _undeclared(instance: Any, schema: Any, root: dict[str, Any], path: str) -> list[str]:
    branches = _branches(schema, root)
    if isinstance(instance, dict):
        properties: dict[str, Any] = {}
        extra: Any = None
        constrained = False
        for branch in branches:
            if "properties" in branch:
                constrained = True
                properties.update(branch["properties"])
            if "additionalProperties" in branch:
                constrained = True
                if branch["additionalProperties"] is not False:
                    extra = branch["additionalProperties"]
        if not constrained:
            return []  # a free-form object (`{"type": "object"}`): nothing to check against
        found: list[str] = []
        for key, value in instance.items():
            if key in properties:
                found += _undeclared(value, properties[key], root, f"{path}/{key}")
            elif extra is True or extra == {}:
                continue
            elif isinstance(extra, dict):
                found += _undeclared(value, extra, root, f"{path}/{key}")
            else:
                found.append(f"{path}/{key}")
        return found
    if isinstance(instance, list):
        items = next((b["items"] for b in branches if "items" in b), None)
        if items is None:
            return []
        found = []
        for index, value in enumerate(instance):
            found += _undeclared(value, items, root, f"{path}/{index}")
        return found
    return []


def undeclared_keys(instance: Any, vendor: str, name: str) -> list[str]:
    """Paths (`/data/0/creator_user_id`) of keys the schema `vendor/name` does not declare."""
    root = load_schema(vendor, name)
    return _undeclared(instance, root, root, "")


def assert_declares_every_key(instance: Any, vendor: str, name: str) -> None:
    """Fail with every key of `instance` that the vendor's schema `name` does not declare."""
    extra = undeclared_keys(instance, vendor, name)
    assert not extra, f"{vendor}/{name} does not declare:\n" + "\n".join(extra)


def assert_exactly_declared(instance: Any, vendor: str, name: str) -> None:
    """Both ways: `instance` matches the vendor's schema `name` and says nothing it does not."""
    assert_matches(instance, vendor, name)
    assert_declares_every_key(instance, vendor, name)
