"""Signals other apps listen to, so that exports never import them."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent once a job reached ``completed``, ``failed`` or ``cancelled`` (after the commit),
#: with ``job_id`` (str), ``organization_id`` (int) and ``status`` (str). Scheduled runs
#: waiting for their export listen to it.
export_job_finished = Signal()
