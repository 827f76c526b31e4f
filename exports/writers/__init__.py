"""Streaming file writers of the export engine, one per format, chosen by format name."""

from __future__ import annotations

from .base import BaseWriter
from .csv_writer import CsvWriter
from .jsonl_writer import JsonlWriter
from .parquet_writer import ParquetWriter
from .xlsx_writer import XlsxWriter

WRITERS: dict[str, type[BaseWriter]] = {
    writer.format: writer for writer in (CsvWriter, XlsxWriter, JsonlWriter, ParquetWriter)
}


def get_writer(format: str) -> BaseWriter:
    """A writer for ``format`` ("csv", "xlsx", "jsonl", "parquet"); ``KeyError`` names the known ones."""
    try:
        return WRITERS[format]()
    except KeyError:
        raise KeyError(f"no writer for format {format!r}; known: {', '.join(sorted(WRITERS))}") from None


__all__ = ["WRITERS", "BaseWriter", "CsvWriter", "JsonlWriter", "ParquetWriter", "XlsxWriter", "get_writer"]
