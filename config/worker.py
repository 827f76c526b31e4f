"""A graceful stop for django-q2 worker processes: finish the chunk, hand the work back.

How django-q2 (1.11) stops: the ``qcluster`` process handles SIGTERM and SIGINT by telling
its sentinel to stop; the sentinel stops fetching tasks and waits, with no time limit, for
every worker to finish the task it holds. The sentinel sets SIGINT to "ignore" and SIGTERM
to the default action, and the workers it forks inherit both: a SIGTERM sent to the whole
process group (Heroku, systemd, ``kill -- -PGID``) ends the sentinel and every worker on
the spot. Either way a long export is cut off (at once, or by the platform's SIGKILL a few
seconds later) and only comes back once its lease has run out, with an attempt used up.

``worker_signals_install`` runs in each worker as it starts (django-q2's ``post_spawn``
signal) and puts a handler in the way of SIGTERM that only remembers the request. Long
tasks ask ``worker_stop_requested()`` between chunks and, when it is true, raise
``WorkerStopping``, hand their work back (exports: see ``exports.services``) and return;
the worker then leaves after that task (django-q2 recycles it: a new worker takes its
place unless the cluster is stopping). A handler that was installed before ours is still
called; the default action is not, since running it is exactly what we postpone.

Only the processes that receive SIGTERM notice it: where the platform signals the
``qcluster`` process alone (a container's PID 1), send the signal to the process group
(``tini -g``, ``dumb-init``) to get this behaviour.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from types import FrameType
from typing import Any

_stop_requested = False
_installed = False
_busy = False  # running a task: a SIGTERM then waits for the next chunk boundary


class WorkerStopping(Exception):
    """Raised between chunks of work when the worker process was asked to stop."""


def worker_stop_requested() -> bool:
    """Whether this process was asked to stop (SIGTERM in a django-q2 worker)."""
    return _stop_requested


def worker_stop_request() -> None:
    """Ask this process to stop after the current chunk (what the SIGTERM handler does)."""
    global _stop_requested
    _stop_requested = True


def worker_stop_clear() -> None:
    """Forget a stop request (for tests; a stopped worker process is not reused)."""
    global _stop_requested
    _stop_requested = False


def _recycle_after_task() -> None:
    """Make django-q2 retire this worker once its current task has reported its result.

    After each task a worker exits (and the sentinel starts a new one) when it reached
    ``recycle`` tasks or its peak memory passed ``max_rss`` kilobytes; with ``max_rss`` at
    1 kB in this process the memory test is true at once. Only this forked process's copy
    of the setting changes. Checked against django-q2 1.11 (``django_q.worker.rss_check``).
    """
    try:
        from django_q.conf import Conf
    except Exception:  # pragma: no cover - only inside a configured Django project
        return
    Conf.MAX_RSS = 1


def worker_process_is_forked() -> bool:
    """Whether this is a worker process of a running cluster. django-q2 also sends
    ``post_spawn`` when it runs a task inline (``sync``), in the caller's own process."""
    return multiprocessing.parent_process() is not None and threading.current_thread() is threading.main_thread()


def worker_task_started(**_: Any) -> None:
    """The worker took a task (django-q2's ``pre_execute``): a SIGTERM now waits for it."""
    global _busy
    _busy = True


def worker_task_finished(**_: Any) -> None:
    """The task returned (``post_execute_in_worker``): an idle worker stops at once again."""
    global _busy
    _busy = False


def worker_signals_install(**_: Any) -> None:
    """Install the SIGTERM handler in this worker process (a ``post_spawn`` receiver)."""
    global _installed
    if _installed or not worker_process_is_forked():
        return
    _installed = True
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if not _busy:
            # Idle, waiting for a task: nothing to hand back, so stop now as a worker
            # without this handler would (else it would wait for work for ever).
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        worker_stop_request()  # no logging here: the interrupted code may hold the log lock
        _recycle_after_task()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
