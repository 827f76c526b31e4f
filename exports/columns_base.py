"""The shape of an export column, shared by the column catalog and the file writers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tagging.formatting import Sensitivity  # whether a column's values identify a person


class ColumnType(StrEnum):
    """What a column holds; writers type their cells from it."""

    TEXT = "text"
    CHOICE = "choice"  # text from a fixed list (status, severity…)
    INTEGER = "integer"
    DECIMAL = "decimal"  # exact (financial impact): Decimal values
    NUMBER = "number"  # tag columns: int, float or Decimal — or text when the data did not fit
    DATE = "date"
    DATETIME = "datetime"  # aware datetimes, already in the organization's timezone
    BOOLEAN = "boolean"
    LIST = "list"  # already joined with "; " by tagging.formatting


class ColumnGroup(StrEnum):
    CORE = "core"
    INVESTIGATION = "investigation"
    TAG = "tag"


class IdentityMode(StrEnum):
    """What an export does with identity columns (``columns.identity``)."""

    PSEUDONYMISE = "pseudonymise"
    INCLUDE = "include"
    OMIT = "omit"


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a flat file: stable key, header label, type, group, XLSX width and
    sensitivity."""

    key: str
    label: str
    type: ColumnType
    group: ColumnGroup = ColumnGroup.CORE
    width: int = 16
    sensitivity: Sensitivity = Sensitivity.STANDARD
