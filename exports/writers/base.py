"""The writer contract: columns and rows in, one file out on a binary stream.

Rows come one at a time (``write``) or a block at a time, column by column
(``write_blocks``: what the export's row plan makes). The column-wise writers (CSV,
JSONL) take blocks as they are; the others take the blocks' rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO, ClassVar

from exports.columns_base import Column

ProgressCallback = Callable[[int], None]
#: Rows given column by column: a sequence of each column's values for the same rows.
ColumnBlock = Sequence[Sequence[Any]]


def rows_of(blocks: Iterable[ColumnBlock]) -> Iterator[Sequence[Any]]:
    """The rows of ``blocks``, in order."""
    for block in blocks:
        yield from zip(*block, strict=True)


def blocks_of(rows: Iterable[Sequence[Any]], size: int) -> Iterator[ColumnBlock]:
    """``rows`` as blocks of up to ``size`` rows."""
    rows = iter(rows)
    while batch := list(itertools.islice(rows, size)):
        yield list(zip(*batch, strict=True))


class _Counter:
    """The rows a writer has taken so far, and the progress reported of them."""

    def __init__(self, *, width: int, on_progress: ProgressCallback | None) -> None:
        self.width = width
        self.on_progress = on_progress
        self.done = 0
        self.reported = -1

    def _report(self) -> None:
        if self.on_progress is not None:
            self.reported = self.done
            self.on_progress(self.done)

    def finish(self) -> None:
        """Report the final count once the file is complete, unless it was just reported."""
        if self.done != self.reported:
            self._report()


class RowCounter(_Counter):
    """Wraps the rows: counts them, checks their width and reports progress as they are consumed.

    A row counts as done when the writer asks for the next one (or the rows run out), i.e.
    once the writer has taken it (Parquet converts a batch of them at a time). An exception
    raised by ``on_progress`` (the engine's way to cancel) surfaces inside the writer's
    loop and propagates out of ``write``.
    """

    def __init__(
        self,
        rows: Iterable[Sequence[Any]],
        *,
        width: int,
        on_progress: ProgressCallback | None,
        progress_every: int,
    ) -> None:
        if progress_every < 1:
            raise ValueError("progress_every must be at least 1")
        super().__init__(width=width, on_progress=on_progress)
        self.rows = rows
        self.progress_every = progress_every

    def __iter__(self) -> Iterator[Sequence[Any]]:
        width, every = self.width, self.progress_every
        for row in self.rows:
            if len(row) != width:
                # A short row would silently shift every following value into the wrong column.
                raise ValueError(f"row {self.done + 1} has {len(row)} values for {width} columns")
            yield row
            self.done += 1
            if self.done % every == 0:
                self._report()


class BlockCounter(_Counter):
    """``RowCounter`` for blocks: checks each block's width and that its columns hold as
    many rows, leaves out empty blocks, and reports progress after every block (a chunk
    of the row plan, a few thousand rows: a stop is noticed within one)."""

    def __init__(self, blocks: Iterable[ColumnBlock], *, width: int, on_progress: ProgressCallback | None) -> None:
        super().__init__(width=width, on_progress=on_progress)
        self.blocks = blocks

    def __iter__(self) -> Iterator[ColumnBlock]:
        width = self.width
        for block in self.blocks:
            if len(block) != width:
                raise ValueError(f"a block of rows has {len(block)} columns for {width}")
            rows = len(block[0]) if block else 0
            if any(len(values) != rows for values in block):
                raise ValueError(f"a block's columns hold different numbers of rows (after row {self.done})")
            if not rows:
                continue
            yield block
            self.done += rows
            self._report()


class BaseWriter:
    """A streaming file writer; subclasses set the class attributes and implement ``write_rows``."""

    format: ClassVar[str]
    media_type: ClassVar[str]
    extension: ClassVar[str]
    #: The file shows an aware datetime as ``isoformat()``, and takes that text for it.
    datetimes_as_text: ClassVar[bool] = False

    def write(
        self,
        *,
        columns: Sequence[Column],
        rows: Iterable[Sequence[Any]],
        stream: BinaryIO,
        about: Sequence[tuple[str, str]] = (),
        on_progress: ProgressCallback | None = None,
        progress_every: int = 5000,
    ) -> int:
        """Write every row to ``stream`` (left open) and return how many rows were written.

        ``about`` is read only after the last row has been taken, so the caller may still
        add to it while the rows stream (the row count, for the XLSX About sheet).
        """
        counter = RowCounter(rows, width=len(columns), on_progress=on_progress, progress_every=progress_every)
        self.write_rows(columns=columns, rows=counter, stream=stream, about=about)
        counter.finish()
        return counter.done

    def write_blocks(
        self,
        *,
        columns: Sequence[Column],
        blocks: Iterable[ColumnBlock],
        stream: BinaryIO,
        about: Sequence[tuple[str, str]] = (),
        on_progress: ProgressCallback | None = None,
        progress_every: int = 5000,
    ) -> int:
        """``write`` for rows given a block at a time, column by column: this writer takes
        the blocks' rows (a ``ColumnWriter`` takes the blocks as they are)."""
        return self.write(
            columns=columns,
            rows=rows_of(blocks),
            stream=stream,
            about=about,
            on_progress=on_progress,
            progress_every=progress_every,
        )

    def write_rows(
        self,
        *,
        columns: Sequence[Column],
        rows: Iterable[Sequence[Any]],
        stream: BinaryIO,
        about: Sequence[tuple[str, str]],
    ) -> None:
        """Consume ``rows`` once, lazily, and write the whole file; the one hook to override."""
        raise NotImplementedError


class ColumnWriter(BaseWriter):
    """A writer that writes a block of rows column by column (``write_columns``, the hook
    to override): blocks are handed on as they are, rows are cut into blocks of
    ``block_rows`` (a thousand rows: a block's text is made at once)."""

    block_rows: ClassVar[int] = 1000

    def write_blocks(
        self,
        *,
        columns: Sequence[Column],
        blocks: Iterable[ColumnBlock],
        stream: BinaryIO,
        about: Sequence[tuple[str, str]] = (),
        on_progress: ProgressCallback | None = None,
        progress_every: int = 5000,
    ) -> int:
        """The blocks as they are, progress reported after each (not every ``progress_every`` rows)."""
        counter = BlockCounter(blocks, width=len(columns), on_progress=on_progress)
        self.write_columns(columns=columns, blocks=counter, stream=stream, about=about)
        counter.finish()
        return counter.done

    def write_rows(
        self,
        *,
        columns: Sequence[Column],
        rows: Iterable[Sequence[Any]],
        stream: BinaryIO,
        about: Sequence[tuple[str, str]],
    ) -> None:
        self.write_columns(columns=columns, blocks=blocks_of(rows, self.block_rows), stream=stream, about=about)

    def write_columns(
        self,
        *,
        columns: Sequence[Column],
        blocks: Iterable[ColumnBlock],
        stream: BinaryIO,
        about: Sequence[tuple[str, str]],
    ) -> None:
        """Write the whole file from ``blocks`` (each with at least one row), consumed once, lazily."""
        raise NotImplementedError
