"""Reads for tag slots: configured slots, field discovery and value preview.

Identity values (a path that an identity slot reads, or a preview asked as identity) are
shown as pseudonyms unless the caller says the member may see identities (``reveal``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet

from cases.models import Case, Investigation
from organizations.models import Organization
from tagging.formatting import as_text, coerce, pseudonymise_raw
from tagging.models import Sensitivity, TagSlot
from tagging.paths import CORE_FIELDS, CUSTOM_FIELDS, FieldPath, compile_getter, parse_field_path
from tagging.resolution import tag_pseudonym_column

DISCOVERY_SAMPLE = 2000
PREVIEW_SAMPLE = 500
PREVIEW_VALUES = 10


def tag_slots_for(*, organization: Organization, active_only: bool = False) -> QuerySet[TagSlot]:
    """The organization's slots in slot order."""
    slots = TagSlot.objects.filter(organization=organization).order_by("slot")
    return slots.filter(is_active=True) if active_only else slots


def tag_identity_paths(*, organization: Organization, source_entity: str) -> set[str]:
    """Field paths of ``source_entity`` that an identity slot of the organization reads
    (inactive slots too: the data still names people)."""
    slots = TagSlot.objects.filter(
        organization=organization, source_entity=source_entity, sensitivity=Sensitivity.IDENTITY
    )
    return set(slots.values_list("field_path", flat=True))


def _overlaps(path: str, identity_paths: set[str]) -> bool:
    # A path above an identity path holds it (custom_fields.reporter shows .phone inside its
    # JSON) and a path below one is part of it: both read the identity value.
    return any(path == p or path.startswith(p + ".") or p.startswith(path + ".") for p in identity_paths)


def tag_path_is_identity(*, organization: Organization, source_entity: str, field_path: str) -> bool:
    """Whether a path reads values an identity slot of the organization reads."""
    return _overlaps(field_path, tag_identity_paths(organization=organization, source_entity=source_entity))


def _recent_cases(organization: Organization) -> QuerySet[Case]:
    # The (organization, created_at) index makes this a short index scan even at 1M cases.
    return Case.objects.filter(organization=organization).order_by("-created_at", "-id")


def entity_samples(
    *, organization: Organization, source_entity: str, fields: set[str], limit: int
) -> list[tuple[str, dict[str, Any] | None]]:
    """(case reference, the entity's values) for the ``limit`` most recent cases.

    The entity is the case itself, its primary RIU, or its latest investigation (highest
    number) — the same meaning the export engine gives a tag's source entity.
    """
    cases = _recent_cases(organization)
    fields = set(fields)
    if source_entity == "case":
        rows = cases.values("reference", *sorted(fields))[:limit]
        return [(row["reference"], row) for row in rows]
    if source_entity == "riu":
        names = sorted(fields)
        rows = cases.values("reference", "primary_riu_id", *[f"primary_riu__{f}" for f in names])[:limit]
        return [
            (row["reference"], {f: row[f"primary_riu__{f}"] for f in names} if row["primary_riu_id"] else None)
            for row in rows
        ]
    sample = list(cases.values_list("id", "reference")[:limit])
    latest: dict[int, dict[str, Any]] = {}
    investigations = (
        Investigation.objects.filter(case_id__in=[cid for cid, _ in sample])
        .order_by("case_id", "-number")
        .values("case_id", *sorted(fields))
    )
    for row in investigations:
        latest.setdefault(row["case_id"], row)
    return [(reference, latest.get(cid)) for cid, reference in sample]


@dataclass
class TagPreview:
    """Values a tag would show, from real recent cases, and how often it has one."""

    values: list[dict[str, str]]
    coverage: float
    sampled: int


def tag_preview(
    *,
    organization: Organization,
    source_entity: str,
    field_path: str,
    data_type: str,
    sensitivity: str = Sensitivity.STANDARD,
    reveal: bool,
) -> TagPreview:
    """Preview a path on the organization's most recent cases (raises FieldPathError).

    Identity values — asked as ``sensitivity`` identity, or read by an identity slot of the
    organization whatever the request says — are pseudonyms, as exports show them, unless
    ``reveal`` (the member has identity access).
    """
    fp = parse_field_path(source_entity, field_path)
    getter = compile_getter(fp)
    pseudonymise = not reveal and (
        sensitivity == Sensitivity.IDENTITY
        or tag_path_is_identity(organization=organization, source_entity=source_entity, field_path=fp.path)
    )
    key = bytes(organization.pseudonym_key)  # memoryview on PostgreSQL; hmac needs bytes
    column = tag_pseudonym_column(source_entity, fp.path)
    samples = entity_samples(
        organization=organization, source_entity=source_entity, fields={fp.field}, limit=PREVIEW_SAMPLE
    )
    values: list[dict[str, str]] = []
    covered = 0
    for reference, entity in samples:
        raw = getter(entity) if entity is not None else None
        if raw is None or raw == "":
            continue
        covered += 1
        if len(values) < PREVIEW_VALUES:
            if pseudonymise:
                text = pseudonymise_raw(raw, key=key, column=column) or ""
            else:
                text = as_text(coerce(raw, data_type))
            values.append({"case_reference": reference, "value": text})
    coverage = round(covered / len(samples), 4) if samples else 0.0
    return TagPreview(values=values, coverage=coverage, sampled=len(samples))


@dataclass
class DiscoveredField:
    """A path seen in the organization's data, with how often it has a value."""

    field_path: str
    kind: str  # "core" or "custom"
    coverage: float
    example: str
    suggested_data_type: str


def _leaves(data: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str):
                yield from _leaves(value, (*prefix, key))
    elif prefix:
        yield prefix, data


def _suggest(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, str):
        for kind, parse in (("date", dt.date.fromisoformat), ("datetime", dt.datetime.fromisoformat)):
            if len(value) >= 10 and value[:4].isdigit():
                try:
                    parse(value)
                    return kind
                except ValueError:
                    pass
    return "text"


def tag_fields_discover(*, organization: Organization, source_entity: str, reveal: bool) -> list[DiscoveredField]:
    """Core fields and every custom-field key path seen in a bounded sample of recent rows.

    The example of a path that an identity slot reads is a pseudonym unless ``reveal``.
    """
    parse_field_path(source_entity, CORE_FIELDS[source_entity][0])  # validates the entity
    core = set(CORE_FIELDS[source_entity])
    samples = entity_samples(
        organization=organization, source_entity=source_entity, fields=core | {CUSTOM_FIELDS}, limit=DISCOVERY_SAMPLE
    )
    total = len(samples) or 1
    counts: dict[str, int] = {}
    examples: dict[str, Any] = {}
    for _, entity in samples:
        if entity is None:
            continue
        for name in core:
            value = entity.get(name)
            if value is not None and value != "":
                counts[name] = counts.get(name, 0) + 1
                examples.setdefault(name, value)
        for keys, value in _leaves(entity.get(CUSTOM_FIELDS) or {}):
            path = FieldPath(source_entity, CUSTOM_FIELDS, keys).path
            if value is not None and value != "" and value != []:
                counts[path] = counts.get(path, 0) + 1
                examples.setdefault(path, value)
            else:
                counts.setdefault(path, 0)
    identity_paths = set() if reveal else tag_identity_paths(organization=organization, source_entity=source_entity)
    key = bytes(organization.pseudonym_key)

    def example(path: str) -> str:
        value = examples.get(path)
        if _overlaps(path, identity_paths):
            text = pseudonymise_raw(value, key=key, column=tag_pseudonym_column(source_entity, path)) or ""
        else:
            text = as_text(value)
        return text[:80]

    found = [
        DiscoveredField(
            field_path=path,
            kind="custom" if path.startswith(CUSTOM_FIELDS + ".") else "core",
            coverage=round(counts.get(path, 0) / total, 4),
            example=example(path),
            suggested_data_type=_suggest(examples.get(path)),
        )
        for path in [*CORE_FIELDS[source_entity], *sorted(p for p in counts if p.startswith(CUSTOM_FIELDS + "."))]
    ]
    core_part = [f for f in found if f.kind == "core"]
    custom_part = sorted((f for f in found if f.kind == "custom"), key=lambda f: (-f.coverage, f.field_path))
    return core_part + custom_part
