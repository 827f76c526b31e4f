"""Reads of the audit log, and its verification."""

from __future__ import annotations

from dataclasses import dataclass, field

from audit.models import AuditChainHead, AuditEvent
from audit.services import GENESIS_HASH, event_hash


@dataclass
class ChainReport:
    """What ``audit_chain_verify`` found for one organization."""

    organization_id: int
    events: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def audit_chain_verify(*, organization_id: int) -> ChainReport:
    """Recompute the organization's chain; report gaps, edited rows and a moved head."""
    report = ChainReport(organization_id=organization_id)
    prev_hash, expected_seq = GENESIS_HASH, 1
    events = AuditEvent.objects.filter(organization_id=organization_id).order_by("sequence")
    for event in events.iterator(chunk_size=2000):
        report.events += 1
        if event.sequence != expected_seq:
            report.problems.append(f"event #{expected_seq} is missing (next found is #{event.sequence})")
        if event.prev_hash != prev_hash:
            report.problems.append(f"event #{event.sequence} does not follow the event before it")
        if event_hash(prev_hash=event.prev_hash, event=event) != event.hash:
            report.problems.append(f"event #{event.sequence} ({event.action}) was changed after it was written")
        prev_hash, expected_seq = event.hash, event.sequence + 1
    head = AuditChainHead.objects.filter(organization_id=organization_id).first()
    head_seq, head_hash = (head.sequence, head.hash) if head else (0, GENESIS_HASH)
    if head_seq != expected_seq - 1 or head_hash != prev_hash:
        report.problems.append(f"the chain ends at #{expected_seq - 1} but #{head_seq} was the last event written")
    return report
