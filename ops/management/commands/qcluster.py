"""``manage.py qcluster``: django-q2's own command, with a stop that survives a group signal.

Platforms stop a worker by signalling its whole process group (honcho, Heroku, systemd's
default ``KillMode``, ``kill -- -PGID``, Ctrl-C in a terminal). django-q2 (1.11) can then
hang for ever: the ``qcluster`` process's handler calls ``stop_event.set()``, a
``multiprocessing`` condition that waits for every waiter to wake, and the sentinel it
waits for may have died of the same signal (it sets SIGTERM to the default action) or
while stopping its own processes, so it never wakes. The process then stays until the
platform's SIGKILL. This command is found before django-q2's (the ``ops`` app is listed
first) and runs the same cluster, whose handler does django-q2's stop in a helper thread
and waits in the main thread only for the sentinel to be gone: a living sentinel carries
out the stop as usual (a signal to this process alone, a container's PID 1); a dead one
is simply reaped. A helper thread stuck in ``set()`` does not keep the process alive. The
workers' part (finish the chunk, hand the job back) is ``config.worker``'s either way.

The sentinel may also have been reaped already: once ``handle`` returns, the main thread
waits in ``multiprocessing``'s exit hook, in ``waitpid`` on the sentinel. When the sentinel
dies of the group signal, that ``waitpid`` can return (and reap it) just before the signal's
handler runs, and before ``multiprocessing`` records the exit code; from then on
``is_alive()`` answers True for ever (its ``waitpid`` fails with ``ECHILD``, which it reads
as "not started yet"). ``_has_exited`` asks the kernel instead.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from django_q.cluster import Cluster
from django_q.management.commands.qcluster import Command as DjangoQCommand

logger = logging.getLogger(__name__)


class GroupSignalSafeCluster(Cluster):
    def sig_handler(self, signum: int, frame: FrameType | None) -> None:
        sentinel = self.sentinel
        if sentinel is None:
            super().sig_handler(signum, frame)
            return
        stopper = threading.Thread(target=super().sig_handler, args=(signum, frame), name="qcluster-stop", daemon=True)
        stopper.start()
        while not _has_exited(sentinel):
            time.sleep(0.1)
        stopper.join(timeout=1)
        if stopper.is_alive():
            logger.info("qcluster: the sentinel died with signal %s's process group; leaving", signum)
        self.start_event = None
        self.stop_event = None


def _has_exited(process: BaseProcess) -> bool:
    """Whether a child process is gone: reaped here if it has just exited, or already reaped
    by a ``waitpid`` elsewhere in this process (then it is no longer our child)."""
    if not process.is_alive():  # reaps it and records its exit code
        return True
    try:  # WNOWAIT: look without reaping, so is_alive() still records the exit code
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)  # type: ignore[arg-type]
    except ChildProcessError:
        return True
    return False


class Command(DjangoQCommand):
    def handle(self, *args: Any, **options: Any) -> None:
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        cluster = GroupSignalSafeCluster()
        cluster.start()
        if options.get("run_once", False):
            cluster.stop()
