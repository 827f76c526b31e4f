"""Streaming file writers of the export engine, one per format, chosen by format name.

A writer's module is imported when the writer is first asked for: the web processes, which
import ``exports.writers.cells`` through the column catalog, never load pyarrow or
openpyxl (about 60 MB and a tenth of a second each)."""

from __future__ import annotations

from importlib import import_module

from .base import BaseWriter

# format -> (module, class) of its writer
_WRITERS = {
    "csv": ("csv_writer", "CsvWriter"),
    "xlsx": ("xlsx_writer", "XlsxWriter"),
    "jsonl": ("jsonl_writer", "JsonlWriter"),
    "parquet": ("parquet_writer", "ParquetWriter"),
}
FORMATS = tuple(_WRITERS)


def writer_class(format: str) -> type[BaseWriter]:
    """The writer class of ``format``; ``KeyError`` names the known ones."""
    try:
        module, name = _WRITERS[format]
    except KeyError:
        raise KeyError(f"no writer for format {format!r}; known: {', '.join(sorted(_WRITERS))}") from None
    writer: type[BaseWriter] = getattr(import_module(f"{__name__}.{module}"), name)
    return writer


def get_writer(format: str) -> BaseWriter:
    """A writer for ``format`` ("csv", "xlsx", "jsonl", "parquet"); ``KeyError`` names the known ones."""
    return writer_class(format)()


__all__ = ["FORMATS", "BaseWriter", "get_writer", "writer_class"]
