"""Serve the admin and API with a django-q2 cluster beside it; one Ctrl-C stops both.

Used by ``make run``. Each child runs in its own process group, so stopping kills the
whole group (runserver's reloader child, qcluster's workers) and nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

PYTHON = sys.executable
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "8000")


def _start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([PYTHON, "manage.py", *args], start_new_session=True)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):  # whatever is left in the group goes too
            os.killpg(child.pid, signal.SIGKILL)


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    children = [_start("runserver", f"{HOST}:{PORT}"), _start("qcluster")]
    site = f"http://{HOST}:{PORT}"
    print(
        f"\n  Dossier is starting on {site}/admin/  (API: {site}/api/v1/, docs: {site}/api/docs/)\n"
        "  Logins (password dossier-demo): admin (org admin, identity access), officer, viewer — organization 'acme'\n"
        "  Press Ctrl-C to stop the server and the task cluster.\n",
        flush=True,
    )
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("A process stopped on its own; stopping the others.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
        return 0
    finally:
        _stop(children)


if __name__ == "__main__":
    sys.exit(main())
