"""django-q2 entry points: load by id, call one service."""

from __future__ import annotations

from config.logs import log_context_task
from exports.models import ExportJob
from exports.party_pseudonyms import party_pseudonyms_sweep
from exports.services import export_job_run, exports_expire, exports_recover


@log_context_task
def run_export(job_id: str) -> str:
    """Run one export job (safe to deliver twice: the claim lets only one worker in)."""
    job = ExportJob.objects.filter(pk=job_id).only("status").first()
    if job is None or job.is_terminal:
        return "nothing to do"
    result = export_job_run(job_id=job_id)
    return result.status if result else "not run here"


@log_context_task
def maintenance() -> dict[str, int]:
    """Every minute: recover jobs of dead workers, expire old files, make the pseudonyms of
    people not yet given theirs."""
    return {**exports_recover(), "expired": exports_expire(), "party_pseudonyms": party_pseudonyms_sweep()}
