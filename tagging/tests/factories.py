"""Factories for tag slots."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from organizations.models import Organization
from tagging.models import TagSlot


def tag_slots(
    organization: Organization, tags: Iterable[tuple[str, str, str]], identity: Collection[tuple[str, str, str]] = ()
) -> list[TagSlot]:
    """A slot per (source entity, field path, data type), numbered from 1 and labelled by
    the three; those in ``identity`` name a person (pseudonymised by default)."""
    return [
        TagSlot.objects.create(
            organization=organization,
            slot=slot,
            label=f"{entity} {path} {data_type}",
            source_entity=entity,
            field_path=path,
            data_type=data_type,
            sensitivity="identity" if (entity, path, data_type) in identity else "standard",
        )
        for slot, (entity, path, data_type) in enumerate(tags, 1)
    ]
