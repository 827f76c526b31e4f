"""SQLite: a large CSV or JSONL export written by several processes at once.

On SQLite the rows are made in Python, one core's worth. A CSV or JSONL file is its rows
one after another, so the export is cut into ``EXPORT_PROCESSES`` parts at ``created_at``
boundaries (as the PostgreSQL parts are): this process writes the first part straight into
the file while forked copies of it write the others into temporary files with the same
writer, each on a SQLite connection of its own (WAL lets readers run beside each other and
beside writers). The parts are then laid into the file in order, without the header a
part's writer repeats. The rows, the bytes and the progress are the single process's.

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
from collections.abc import Callable
from typing import Any, BinaryIO

from django.conf import settings
from django.db import connection, connections
from django.db.models import QuerySet

from cases.models import Case
from exports.pushdown import part_bounds
from exports.rows import RowPlan
from exports.tempfiles import temporary_dir

FORMATS = ("csv", "jsonl")  # files that are their rows one after another
MIN_ROWS = 20_000  # below this a fork costs more than it saves
_PR_SET_PDEATHSIG = 1


def forked_write(
    *,
    plan: RowPlan,
    cases: QuerySet[Case],
    format: str,
    stream: BinaryIO,
    total: int,
    write: Callable[[Any, BinaryIO, Callable[[int], None] | None], int],
    on_progress: Callable[[int], None] | None = None,
) -> int | None:
    """Write the file with several processes; returns the row count, or None (nothing
    written) when this export is better written by one: not SQLite, another format, a small
    export, one process configured, no ``fork`` here, or inside a transaction (whose rows
    other connections would not see).

    ``write(rows, stream, on_progress)`` is the format's writer over ``rows``; it writes
    the header (if the format has one) and returns the rows written."""
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
    bounds = part_bounds(cases, total, -(-total // processes))
    if len(bounds) < 3:
        return None  # one instant holds (nearly) every case: one part
    ranges = list(itertools.pairwise(bounds))
    header = _header(write)
    # A forked copy must not share the parent's SQLite connection (nor its open statement).
    connections.close_all()
    counters = mmap.mmap(-1, 8 * len(ranges))  # each part's rows so far, shared with its process
    children: list[_Child] = []
    try:
        for index, (start, stop) in enumerate(ranges[1:], 1):
            children.append(_Child.fork(plan, _between(cases, start, stop), write, counters, index))

        def progress(own: int) -> None:
            if on_progress is not None:
                on_progress(own + sum(_counted(counters, child.index) for child in children))

        start, stop = ranges[0]
        mine = write(plan.rows(_between(cases, start, stop)), stream, progress)
        rows = mine
        for child in children:
            child.wait(functools.partial(progress, mine))
            rows += child.lay_into(stream, skip=len(header))
        if on_progress is not None:
            on_progress(rows)
        return rows
    finally:
        for child in children:
            child.close()
        counters.close()


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
        self.rows: int | None = None

    @classmethod
    def fork(
        cls,
        plan: RowPlan,
        cases: QuerySet[Case],
        write: Callable[[Any, BinaryIO, Callable[[int], None] | None], int],
        counters: mmap.mmap,
        index: int,
    ) -> _Child:
        output = tempfile.TemporaryFile(dir=temporary_dir())  # noqa: SIM115  (closed by close())
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the part's process: never returns
            os.close(read_end)
            _run_part(plan, cases, write, output, counters, index, write_end)
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
            raise RuntimeError(f"export part {self.index + 1}: {message or f'its process ended ({status})'}")
        self.rows = int(message)

    def lay_into(self, stream: BinaryIO, *, skip: int) -> int:
        self.output.seek(skip)
        shutil.copyfileobj(self.output, stream, 1 << 20)
        return self.rows or 0

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


def _run_part(
    plan: RowPlan,
    cases: QuerySet[Case],
    write: Callable[[Any, BinaryIO, Callable[[int], None] | None], int],
    output: BinaryIO,
    counters: mmap.mmap,
    index: int,
    result: int,
) -> None:
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent decides when this part stops
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with its parent

        def progress(rows: int) -> None:
            struct.pack_into("q", counters, 8 * index, rows)

        rows = write(plan.rows(cases), output, progress)
        output.flush()
        os.write(result, str(rows).encode())
        code = 0
    except BaseException as exc:  # reported to the parent, whatever it is
        with contextlib.suppress(OSError):
            os.write(result, f"{type(exc).__name__}: {exc}"[:4000].encode(errors="replace"))
    finally:
        os._exit(code)
