"""Tag values of a row: compiled once per export, then dict lookups per cell."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tagging.formatting import COERCERS, Sensitivity, pseudonymise_raw
from tagging.paths import compile_getter, parse_field_path

__all__ = [
    "CompiledTag",
    "compile_tags",
    "pseudonymise_raw",
    "resolve_tags",
    "row_resolver",
    "tag_pseudonym_column",
]


def tag_pseudonym_column(source_entity: str, field_path: str) -> str:
    """The column key of a tag's pseudonyms: its source path (``case.custom_fields.x``).

    Keyed by where the value lives rather than by slot, so a tag keeps its pseudonyms when
    it moves to another slot, and the preview shows the same pseudonyms as exports.
    """
    return f"{source_entity}.{field_path}"


@dataclass(frozen=True, slots=True)
class CompiledTag:
    """A tag from a job's snapshot, with its path compiled and its formatter bound."""

    slot: int
    label: str
    source_entity: str
    field_path: str
    data_type: str
    sensitivity: str
    getter: Callable[[Mapping[str, Any]], Any]
    coercer: Callable[[Any], Any]

    def value(self, entities: Mapping[str, Mapping[str, Any] | None]) -> Any:
        """The formatted value of this tag for one case's entities (None when missing)."""
        source = entities.get(self.source_entity)
        if source is None:
            return None
        raw = self.getter(source)
        if raw is None or raw == "":
            return None
        return self.coercer(raw)

    @property
    def is_identity(self) -> bool:
        """Whether the tag's values name or identify a person."""
        return self.sensitivity == Sensitivity.IDENTITY

    @property
    def pseudonym_column(self) -> str:
        """The column key of this tag's pseudonyms (``tag_pseudonym_column``)."""
        return tag_pseudonym_column(self.source_entity, self.field_path)


def compile_tags(snapshot: Iterable[Mapping[str, Any]]) -> list[CompiledTag]:
    """Compile a tag snapshot (``TagSlot.snapshot()`` dicts) in slot order.

    Snapshots frozen before tags had a sensitivity compile as standard.
    """
    tags = []
    for item in sorted(snapshot, key=lambda t: t["slot"]):
        fp = parse_field_path(item["source_entity"], item["field_path"])
        tags.append(
            CompiledTag(
                slot=item["slot"],
                label=item["label"],
                source_entity=item["source_entity"],
                field_path=fp.path,
                data_type=item["data_type"],
                sensitivity=item.get("sensitivity", Sensitivity.STANDARD),
                getter=compile_getter(fp),
                coercer=COERCERS[item["data_type"]],
            )
        )
    return tags


def resolve_tags(tags: Sequence[CompiledTag], entities: Mapping[str, Mapping[str, Any] | None]) -> list[Any]:
    """The values of every tag for one case."""
    return row_resolver(tags)(entities)


def row_resolver(tags: Sequence[CompiledTag]) -> Callable[[Mapping[str, Mapping[str, Any] | None]], list[Any]]:
    """One function that yields every tag value of a row: the export engine's hot path.

    Attribute lookups and method calls are hoisted out of the per-row loop; per cell it is
    one dict lookup for the entity, the compiled getter and the bound formatter.
    """
    plan = [(tag.source_entity, tag.getter, tag.coercer) for tag in tags]

    def resolve(entities: Mapping[str, Mapping[str, Any] | None]) -> list[Any]:
        out: list[Any] = []
        append = out.append
        for entity, getter, coercer in plan:
            source = entities[entity]
            raw = None if source is None else getter(source)
            append(None if raw is None or raw == "" else coercer(raw))
        return out

    return resolve
