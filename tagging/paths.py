"""The field-path grammar of tag slots, and fast resolution of a path on a row.

A path is either a whitelisted core field of its entity (a plain column: no relations,
no secrets, no dunders) or ``custom_fields.`` followed by one or more keys. Everything
that needs a path (the admin form, the API, the preview, the export engine) parses it here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

CUSTOM_FIELDS = "custom_fields"
MAX_DEPTH = 6
_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

#: Plain columns an admin may promote, per entity. Relations (assignee, primary_riu, case,
#: organization) and ids are left out on purpose: a tag reads values, not links.
CORE_FIELDS: dict[str, tuple[str, ...]] = {
    "case": (
        "reference",
        "title",
        "summary",
        "status",
        "category",
        "subcategory",
        "severity",
        "priority",
        "intake_channel",
        "business_unit",
        "department",
        "country",
        "region",
        "site",
        "reported_at",
        "created_at",
        "updated_at",
        "closed_at",
        "due_at",
        "is_anonymous",
        "outcome",
        "is_substantiated",
        "financial_impact",
        "currency",
        "risk_score",
        "retaliation_alleged",
        "involves_management",
        "legal_hold",
        "escalated",
        "policy_reference",
        "closure_reason",
        "source_system",
        "external_reference",
    ),
    "riu": ("reference", "riu_type", "received_at", "reporter_relationship", "language", "is_anonymous"),
    "investigation": (
        "number",
        "status",
        "investigator",
        "allegation_type",
        "opened_at",
        "closed_at",
        "finding",
        "actions_taken",
    ),
}
_RELATIONS = {"organization", "assignee", "primary_riu", "case", "investigations", "id", "pk"}


class FieldPathError(ValueError):
    """A field path that the grammar does not allow; the message says what is allowed."""


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A parsed path: a core field (``keys`` empty) or custom-field keys."""

    source_entity: str
    field: str
    keys: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return ".".join((self.field, *self.keys))

    @property
    def is_custom(self) -> bool:
        return self.field == CUSTOM_FIELDS


def parse_field_path(source_entity: str, path: str) -> FieldPath:
    """Parse ``path`` for ``source_entity`` or raise ``FieldPathError`` in plain words."""
    if source_entity not in CORE_FIELDS:
        raise FieldPathError(f"Unknown source entity {source_entity!r}: use case, riu or investigation.")
    path = (path or "").strip()
    if not path:
        raise FieldPathError("A field path is needed, e.g. business_unit or custom_fields.hr.region.")
    parts = path.split(".")
    head, keys = parts[0], tuple(parts[1:])
    if head == CUSTOM_FIELDS:
        if not keys:
            raise FieldPathError("Name a key after custom_fields, e.g. custom_fields.hr.region.")
        if len(keys) > MAX_DEPTH:
            raise FieldPathError(f"A custom-field path can be at most {MAX_DEPTH} keys deep.")
        for key in keys:
            if not key:
                raise FieldPathError("Empty key in the path: check for a doubled or trailing dot.")
            if key.startswith("__") or not _KEY_RE.match(key):
                raise FieldPathError(
                    f"Key {key!r} is not allowed: keys use letters, digits, '_' and '-' and do not start with '__'."
                )
        return FieldPath(source_entity, head, keys)
    allowed = CORE_FIELDS[source_entity]
    hint = f"use one of {', '.join(allowed)}, or custom_fields.<key>"
    if keys or "__" in head:
        if head in _RELATIONS or "__" in head:
            raise FieldPathError(f"Relations and '__' lookups are not allowed in a {source_entity} path: {hint}.")
        raise FieldPathError(f"{head!r} has no sub-fields: only custom_fields.<key>… paths have dots.")
    if head in _RELATIONS:
        raise FieldPathError(f"{head!r} is a relation, not a value. For a {source_entity}, {hint}.")
    if head not in allowed:
        raise FieldPathError(f"Unknown field {head!r} for a {source_entity}: {hint}.")
    return FieldPath(source_entity, head, ())


def compile_getter(field_path: FieldPath) -> Callable[[Mapping[str, Any]], Any]:
    """A function that reads the path from an entity's already-fetched values (no query).

    Runs for every cell of million-row exports, so the walk is built once per tag and
    does nothing but dict lookups per row.
    """
    if not field_path.is_custom:
        name = field_path.field
        return lambda values: values.get(name)
    keys = field_path.keys
    if len(keys) == 1:
        (k1,) = keys

        def one(values: Mapping[str, Any]) -> Any:
            data = values.get(CUSTOM_FIELDS)
            return data.get(k1) if isinstance(data, dict) else None

        return one
    if len(keys) == 2:
        k1, k2 = keys

        def two(values: Mapping[str, Any]) -> Any:
            data = values.get(CUSTOM_FIELDS)
            if isinstance(data, dict):
                inner = data.get(k1)
                if isinstance(inner, dict):
                    return inner.get(k2)
            return None

        return two

    def walk(values: Mapping[str, Any]) -> Any:
        data: Any = values.get(CUSTOM_FIELDS)
        for key in keys:
            if not isinstance(data, dict):
                return None
            data = data.get(key)
        return data

    return walk


def fields_needed(paths: list[FieldPath]) -> dict[str, set[str]]:
    """Per entity, the columns to fetch so every path can be resolved from memory."""
    needed: dict[str, set[str]] = {}
    for fp in paths:
        needed.setdefault(fp.source_entity, set()).add(fp.field)
    return needed
