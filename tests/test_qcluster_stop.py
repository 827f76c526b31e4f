"""The group-signal-safe stop of ``manage.py qcluster`` waits for its sentinel to be gone; it
must see it gone even when another ``waitpid`` in the process reaped it first (the exit hook
of ``multiprocessing`` does, when the signal lands just as the sentinel dies of it)."""

from __future__ import annotations

import multiprocessing
import os
import time

from ops.management.commands.qcluster import _has_exited

fork = multiprocessing.get_context("fork")


def test_a_child_reaped_by_another_waitpid_has_exited_though_is_alive_says_otherwise():
    child = fork.Process(target=os._exit, args=(0,))
    child.start()
    os.waitpid(child.pid, 0)  # what the interrupted exit hook's join did
    assert child.is_alive()  # multiprocessing's answer: the trap the stop used to loop in
    assert _has_exited(child)


def test_a_child_that_just_exited_is_reaped_and_has_exited():
    child = fork.Process(target=os._exit, args=(3,))
    child.start()
    deadline = time.monotonic() + 10
    while not _has_exited(child):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert child.exitcode == 3


def test_a_running_child_has_not_exited():
    child = fork.Process(target=time.sleep, args=(30,))
    child.start()
    try:
        assert not _has_exited(child)
        assert not _has_exited(child)
    finally:
        child.kill()
        child.join()
