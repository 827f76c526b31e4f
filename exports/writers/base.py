"""The writer contract: columns and an iterator of rows in, one file out on a binary stream."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO, ClassVar

from exports.columns_base import Column

ProgressCallback = Callable[[int], None]


class RowCounter:
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
        self.rows = rows
        self.width = width
        self.on_progress = on_progress
        self.progress_every = progress_every
        self.done = 0
        self.reported = -1

    def __iter__(self) -> Iterator[Sequence[Any]]:
        width, every, report = self.width, self.progress_every, self.on_progress
        for row in self.rows:
            if len(row) != width:
                # A short row would silently shift every following value into the wrong column.
                raise ValueError(f"row {self.done + 1} has {len(row)} values for {width} columns")
            yield row
            self.done += 1
            if report is not None and self.done % every == 0:
                self.reported = self.done
                report(self.done)

    def finish(self) -> None:
        """Report the final count once the file is complete, unless it was just reported."""
        if self.on_progress is not None and self.done != self.reported:
            self.reported = self.done
            self.on_progress(self.done)


class BaseWriter:
    """A streaming file writer; subclasses set the class attributes and implement ``write_rows``."""

    format: ClassVar[str]
    media_type: ClassVar[str]
    extension: ClassVar[str]

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
