"""SQLite: a large export written by several processes at once.

On SQLite the rows are made in Python, one core's worth. The export is cut into
``EXPORT_PROCESSES`` parts at ``created_at`` boundaries (as the PostgreSQL parts are): this
process writes the first part while forked copies of it write the others into temporary
files, each on a SQLite connection of its own (WAL lets readers run beside each other and
beside writers), and the parts are laid into the file in order. A CSV or JSONL file is its
rows one after another: a part is the same writer's file, laid in without the header it
repeats. An XLSX part is its sheet rows (unnumbered, as every data row is), laid into the
workbook's sheets as the PostgreSQL parts' are. A Parquet part is its rows as Arrow record
batches (Arrow's IPC stream), written into the file's row groups after this process's own,
in its schema. The rows, the values and the progress are the single process's (CSV and
JSONL byte for byte).

A part process only reads and writes its own file, and ends with ``os._exit`` (no
``atexit``, no finalizers of the parent's objects); it dies with its parent (Linux's
parent-death signal), and the parent kills it when the export stops (cancelled, lease
lost, worker stopping).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import mmap
import os
import shutil
import signal
import struct
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO

from django.conf import settings
from django.db import connection, connections
from django.db.models import QuerySet

from cases.models import Case
from exports.pushdown import line_blocks, part_bounds
from exports.rows import RowPlan
from exports.tempfiles import temporary_dir
from exports.writers.base import ColumnBlock

FORMATS = ("csv", "jsonl", "xlsx", "parquet")
MIN_ROWS = 20_000  # smaller exports take seconds in one process: not worth another process
_PR_SET_PDEATHSIG = 1

Write = Callable[[Iterable[ColumnBlock], BinaryIO, Callable[[int], None] | None], int]
Produce = Callable[[BinaryIO, Callable[[int], None]], int]


def forked_write(
    *,
    plan: RowPlan,
    cases: QuerySet[Case],
    format: str,
    stream: BinaryIO,
    total: int,
    write: Write,
    about: list[tuple[str, str]],
    on_progress: Callable[[int], None] | None = None,
) -> int | None:
    """Write the file with several processes; returns the row count, or None (nothing
    written) when this export is better written by one: not SQLite, another format, a small
    export, one process configured, no ``fork`` here, or inside a transaction (whose rows
    other connections would not see).

    ``total`` is the file's rows (cases, or investigations). ``write(blocks, stream,
    on_progress)`` is the format's writer over the row plan's blocks; it writes
    the header (if the format has one) and returns the rows written. An XLSX part is its
    sheet rows (``<row>`` elements, a line each), laid into the workbook's sheets."""
    processes = int(getattr(settings, "EXPORT_PROCESSES", 2))
    if (
        connection.vendor != "sqlite"
        or format not in FORMATS
        or processes < 2
        or total < MIN_ROWS
        or not hasattr(os, "fork")
        or connection.in_atomic_block
        or connection.is_in_memory_db()  # type: ignore[attr-defined]  # its processes could not open it
    ):
        return None
    cases_total = total if plan.dataset == "cases" else cases.count()  # the parts are ranges of cases
    bounds = part_bounds(cases, cases_total, -(-cases_total // processes))
    if len(bounds) < 3:
        return None  # one instant holds (nearly) every case: one part
    parts = [_between(cases, start, stop) for start, stop in itertools.pairwise(bounds)]
    if format == "xlsx":

        def sheet_rows(i: int, progress: Callable[[int], None]) -> Iterator[bytes]:
            return _sheet_rows(plan.rows(parts[i]), len(plan.columns), progress)

        def produce(i: int) -> Produce:
            return lambda out, progress: _written(sheet_rows(i, progress), out)

    elif format == "parquet":

        def produce(i: int) -> Produce:
            return lambda out, progress: _arrow_written(plan, parts[i], out, progress)

    else:

        def produce(i: int) -> Produce:
            return lambda out, progress: write(plan.blocks(parts[i]), out, progress)

    header = _header(write) if format in ("csv", "jsonl") else b""
    # A forked copy must not share the parent's SQLite connection (nor its open statement).
    connections.close_all()
    counters = mmap.mmap(-1, 8 * len(parts))  # each part's rows so far, shared with its process
    children: list[_Child] = []
    try:
        for index in range(1, len(parts)):
            children.append(_Child.fork(produce(index), counters, index))

        def progress(own: int) -> None:
            if on_progress is not None:
                on_progress(own + sum(_counted(counters, child.index) for child in children))

        if format == "xlsx":
            rows = _workbook(plan, stream, sheet_rows(0, progress), children, progress, about)
        elif format == "parquet":
            rows = _parquet(plan, stream, parts[0], children, progress, about)
        else:
            mine = produce(0)(stream, progress)
            rows = mine
            for child in children:
                child.wait(functools.partial(progress, mine))
                child.output.seek(len(header))
                shutil.copyfileobj(child.output, stream, 1 << 20)
                rows += child.rows
        if on_progress is not None:
            on_progress(rows)
        return rows
    finally:
        for child in children:
            child.close()
        counters.close()


def _workbook(
    plan: RowPlan,
    stream: BinaryIO,
    own: Iterator[bytes],
    children: list[_Child],
    progress: Callable[[int], None],
    about: list[tuple[str, str]],
) -> int:
    """The workbook of this process's sheet rows, then the parts', laid into its sheets
    (rows carry no numbers: a part's rows follow whatever came before them, however many
    rows the cases before it held by the time they were read)."""
    from exports.writers.xlsx_writer import XlsxWriter, workbook_write

    rows = 0

    def blocks() -> Iterator[bytes]:
        nonlocal rows
        for block in own:
            rows += block.count(b"\n")
            yield block
        mine = rows
        for child in children:
            child.wait(functools.partial(progress, mine))
            child.output.seek(0)
            yield from line_blocks(child.output)
            rows += child.rows
        about.append(("Rows", f"{rows:,}"))  # as the one-process workbook's About sheet

    workbook_write(stream=stream, columns=plan.columns, xml=blocks(), about=about, limit=XlsxWriter.max_rows_per_sheet)
    return rows


def _arrow_written(plan: RowPlan, cases: QuerySet[Case], out: BinaryIO, progress: Callable[[int], None]) -> int:
    """A Parquet part: its rows as Arrow record batches, in Arrow's IPC stream format."""
    import pyarrow as pa

    from exports.writers.parquet_writer import ParquetWriter, record_batches

    schema, records = record_batches(plan.columns, plan.rows(cases), ParquetWriter.batch_rows)
    done = 0
    with pa.ipc.new_stream(out, schema) as ipc:
        for record in records:
            ipc.write_batch(record)
            done += record.num_rows
            progress(done)
    return done


def _parquet(
    plan: RowPlan,
    stream: BinaryIO,
    cases: QuerySet[Case],
    children: list[_Child],
    progress: Callable[[int], None],
    about: list[tuple[str, str]],
) -> int:
    """The Parquet file of this process's rows, then the parts' record batches, in row groups
    as one process writes them. The schema is this process's: its datetimes are in the zone
    of the file's first datetime; a part's batches are cast to it (the zone is all that can
    differ, and only in name: Arrow keeps the instants in UTC)."""
    import pyarrow as pa

    from exports.writers.parquet_writer import ParquetWriter, parquet_write, record_batches

    schema, own = record_batches(plan.columns, plan.rows(cases), ParquetWriter.batch_rows)
    rows = 0

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal rows
        for record in own:
            rows += record.num_rows
            progress(rows)
            yield record
        mine = rows
        for child in children:
            child.wait(functools.partial(progress, mine))
            child.output.seek(0)
            with pa.ipc.open_stream(child.output) as reader:
                for record in reader:
                    yield record.cast(schema)
            rows += child.rows
        about.append(("Rows", f"{rows:,}"))  # read once the batches are exhausted

    parquet_write(
        stream,
        schema,
        batches(),
        about,
        row_group_rows=ParquetWriter.row_group_rows,
        compression=ParquetWriter.compression,
    )
    return rows


def _sheet_rows(rows: Iterable[Sequence[Any]], width: int, progress: Callable[[int], None]) -> Iterator[bytes]:
    """Rows as ``<row>`` elements, one a line, 1,000 a block: what the one-process
    workbook writes, a line feed in text written ``&#10;``."""
    from exports.writers.xlsx_writer import RowEncoder

    encode = RowEncoder(width).encode
    lines: list[str] = []
    done = 0
    for done, values in enumerate(rows, 1):
        lines.append(encode(values).replace("\n", "&#10;"))
        if len(lines) == 1000:  # ≈ 3.5 MB of XML (a 93-column row is ≈ 3.5 kB)
            lines.append("")
            yield "\n".join(lines).encode()
            lines = []
            if done % 5000 == 0:
                progress(done)
    if lines:
        lines.append("")
        yield "\n".join(lines).encode()
    progress(done)


def _written(blocks: Iterator[bytes], out: BinaryIO) -> int:
    """Write the blocks of lines; returns the lines written."""
    lines = 0
    for block in blocks:
        out.write(block)
        lines += block.count(b"\n")
    return lines


def _between(cases: QuerySet[Case], start: Any, stop: Any) -> QuerySet[Case]:
    if start is not None:
        cases = cases.filter(created_at__gte=start)
    if stop is not None:
        cases = cases.filter(created_at__lt=stop)
    return cases


def _header(write: Callable[[Any, BinaryIO, Callable[[int], None] | None], int]) -> bytes:
    """What the writer writes before any row (the CSV's BOM and labels; nothing for JSONL)."""
    with tempfile.TemporaryFile(dir=temporary_dir()) as out:
        write(iter(()), out, None)
        out.seek(0)
        return out.read()


def _counted(counters: mmap.mmap, index: int) -> int:
    return int(struct.unpack_from("q", counters, 8 * index)[0])


class _Child:
    """A forked process writing one part into a temporary file."""

    def __init__(self, pid: int, index: int, output: BinaryIO, errors: int) -> None:
        self.pid, self.index, self.output, self.errors = pid, index, output, errors
        self.rows = 0

    @classmethod
    def fork(cls, produce: Produce, counters: mmap.mmap, index: int) -> _Child:
        output = tempfile.TemporaryFile(dir=temporary_dir())  # noqa: SIM115  (closed by close())
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the part's process: never returns
            os.close(read_end)
            _run_part(produce, output, counters, index, write_end)
        os.close(write_end)
        return cls(pid, index, output, read_end)

    def wait(self, report: Callable[[], None]) -> None:
        """Until the part is written, reporting progress (which may raise: stopped) every
        half second; the part's error is raised as a RuntimeError."""
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pid = 0
                break
            report()
            time.sleep(0.5)
        message = os.read(self.errors, 4096).decode(errors="replace")
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            report()  # a stopped export (cancelled, worker stopping) says so, not its part
            raise RuntimeError(f"export part {self.index + 1}: {message or f'its process ended ({status})'}")
        self.rows = int(message)

    def close(self) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0
        self.output.close()
        with contextlib.suppress(OSError):
            os.close(self.errors)


def _run_part(produce: Produce, output: BinaryIO, counters: mmap.mmap, index: int, result: int) -> None:
    code = 1
    try:
        # The parent decides when this part stops (a stopping worker hands its job back).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with its parent

        def progress(rows: int) -> None:
            struct.pack_into("q", counters, 8 * index, rows)

        rows = produce(output, progress)
        output.flush()
        os.write(result, str(rows).encode())
        code = 0
    except BaseException as exc:  # reported to the parent, whatever it is
        with contextlib.suppress(OSError):
            os.write(result, f"{type(exc).__name__}: {exc}"[:4000].encode(errors="replace"))
    finally:
        os._exit(code)
