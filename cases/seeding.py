"""Deterministic, realistic demo data for demos, tests and benchmarks.

The same ``seed`` and ``anchor`` always give the same cases, RIUs, investigations and
parties (ids and the organization aside). Rows go in through ``cases.bulk`` in batches, so a
million cases take minutes, not hours.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from cases.bulk import insert_rows, next_id, reset_sequences
from cases.demo_people import DemoPeople
from cases.models import RIU, Case, Investigation, Party, PartyRole

CATEGORIES: dict[str, tuple[float, list[str]]] = {
    "Harassment": (0.18, ["Sexual harassment", "Bullying", "Hostile work environment"]),
    "Discrimination": (0.10, ["Age", "Gender", "Race or ethnicity", "Disability"]),
    "Fraud": (0.12, ["Expense fraud", "Procurement fraud", "Financial reporting", "Payroll fraud"]),
    "Bribery & Corruption": (0.06, ["Facilitation payment", "Gifts and hospitality", "Public official"]),
    "Conflict of Interest": (0.09, ["Undisclosed relationship", "Outside employment", "Vendor interest"]),
    "Data Privacy": (0.08, ["Data breach", "Improper access", "Data retention"]),
    "Health & Safety": (0.10, ["Workplace injury", "Unsafe conditions", "Environmental"]),
    "Theft": (0.07, ["Inventory theft", "Cash theft", "IP theft"]),
    "Retaliation": (0.06, ["Demotion", "Termination", "Exclusion"]),
    "Policy Violation": (0.14, ["Code of conduct", "IT acceptable use", "Travel policy", "Timekeeping"]),
}
SEVERITIES = (["low", "medium", "high", "critical"], [0.30, 0.42, 0.21, 0.07])
CHANNELS = (["hotline", "web", "email", "walk_in", "other"], [0.42, 0.33, 0.13, 0.08, 0.04])
BUSINESS_UNITS = (
    ["Retail", "Manufacturing", "Corporate", "Logistics", "Finance", "Technology", "Healthcare"],
    [0.24, 0.20, 0.14, 0.13, 0.10, 0.11, 0.08],
)
DEPARTMENTS = ["Sales", "Operations", "HR", "Finance", "IT", "Legal", "Procurement", "Warehouse", "Marketing"]
LOCATIONS: list[tuple[str, str, list[str], float]] = [
    ("US", "AMER", ["Chicago", "Dallas", "Newark", "Seattle"], 0.34),
    ("CA", "AMER", ["Toronto", "Montreal"], 0.05),
    ("MX", "AMER", ["Monterrey"], 0.05),
    ("BR", "AMER", ["São Paulo"], 0.05),
    ("GB", "EMEA", ["London", "Manchester"], 0.12),
    ("DE", "EMEA", ["Berlin", "Munich", "Hamburg"], 0.10),
    ("FR", "EMEA", ["Paris", "Lyon"], 0.06),
    ("ZA", "EMEA", ["Johannesburg"], 0.03),
    ("IN", "APAC", ["Bengaluru", "Pune"], 0.09),
    ("JP", "APAC", ["Tokyo"], 0.04),
    ("AU", "APAC", ["Sydney", "Melbourne"], 0.04),
    ("SG", "APAC", ["Singapore"], 0.03),
]
INVESTIGATORS = [
    "Dana Whitfield",
    "Marcus Oyelaran",
    "Priya Raman",
    "Tomasz Nowak",
    "Elena García",
    "Hiro Tanaka",
    "Grace O'Neill",
    "Samuel Adeyemi",
    "Chloé Martin",
    "Jonas Berg",
    "Aisha Khan",
    "Liam Murphy",
]
ALLEGATIONS = {
    "Harassment": ["Verbal harassment", "Physical harassment", "Online harassment"],
    "Discrimination": ["Hiring bias", "Pay disparity", "Promotion bias"],
    "Fraud": ["Falsified records", "Kickbacks", "Misappropriation"],
    "Bribery & Corruption": ["Improper payment", "Improper gift"],
    "Conflict of Interest": ["Undisclosed interest", "Self-dealing"],
    "Data Privacy": ["Unauthorised disclosure", "Unauthorised access"],
    "Health & Safety": ["Safety breach", "Negligence"],
    "Theft": ["Theft of property", "Theft of data"],
    "Retaliation": ["Adverse action", "Intimidation"],
    "Policy Violation": ["Policy breach", "Misuse of assets"],
}
TITLE_BITS = [
    "reported by {who} at {site}",
    "concerning {dept} team in {site}",
    "raised about a {dept} manager",
    "involving a vendor at {site}",
    "observed in {dept}, {site}",
]
WHO = ["an employee", "a contractor", "a former employee", "a customer", "an anonymous caller"]
OUTCOMES_SUBST = ["disciplinary_action", "termination", "training", "policy_change", "referred"]
OUTCOMES_NOT = ["no_action", "training", "policy_change"]
LANGUAGES = (["en", "es", "de", "fr", "pt", "ja", "hi"], [0.62, 0.1, 0.09, 0.07, 0.05, 0.04, 0.03])
RIU_TYPES = {
    "hotline": "hotline_report",
    "web": "web_report",
    "email": "email_report",
    "walk_in": "manager_referral",
    "other": "audit_finding",
}
RELATIONSHIPS = (
    ["employee", "former_employee", "contractor", "vendor", "customer", "anonymous"],
    [0.55, 0.08, 0.09, 0.05, 0.05, 0.18],
)
INVESTIGATION_COUNTS = ([0, 1, 2, 3, 4], [0.22, 0.43, 0.20, 0.10, 0.05])
SUBJECT_COUNTS = ([1, 2, 3], [0.60, 0.30, 0.10])
WITNESS_COUNTS = ([0, 1, 2, 3], [0.35, 0.35, 0.20, 0.10])
REPORTER, SUBJECT, WITNESS = PartyRole.REPORTER.value, PartyRole.SUBJECT.value, PartyRole.WITNESS.value
# Chance that a party is one of the organization's recurring people rather than a newcomer.
RECURRING_SHARE = {REPORTER: 0.15, SUBJECT: 0.25, WITNESS: 0.35}
EXTERNAL_RELATIONSHIPS = frozenset({"vendor", "customer"})


CASE_FIELDS = [
    "id",
    "organization",
    "reference",
    "title",
    "summary",
    "status",
    "category",
    "subcategory",
    "severity",
    "priority",
    "intake_channel",
    "business_unit",
    "department",
    "country",
    "region",
    "site",
    "reported_at",
    "created_at",
    "updated_at",
    "closed_at",
    "due_at",
    "assignee",
    "is_anonymous",
    "outcome",
    "is_substantiated",
    "financial_impact",
    "currency",
    "risk_score",
    "retaliation_alleged",
    "involves_management",
    "legal_hold",
    "escalated",
    "policy_reference",
    "closure_reason",
    "source_system",
    "external_reference",
    "primary_riu",
    "custom_fields",
]
RIU_FIELDS = [
    "id",
    "organization",
    "reference",
    "riu_type",
    "received_at",
    "reporter_relationship",
    "language",
    "is_anonymous",
    "custom_fields",
]
INVESTIGATION_FIELDS = [
    "organization",
    "case",
    "number",
    "status",
    "investigator",
    "allegation_type",
    "opened_at",
    "closed_at",
    "finding",
    "actions_taken",
    "custom_fields",
]
PARTY_FIELDS = ["organization", "case", "role", "full_name", "email", "phone", "employee_id", "job_title"]


@dataclass
class SeedResult:
    """What ``cases_seed`` inserted."""

    cases: int = 0
    rius: int = 0
    investigations: int = 0
    parties: int = 0
    skipped_reason: str = ""
    extras: dict[str, int] = field(default_factory=dict)


def _weighted(rng: random.Random, options: tuple[list[Any], list[float]]) -> Any:
    population, cum_weights = _CUMULATIVE[id(options)]
    return rng.choices(population, cum_weights=cum_weights)[0]


_CUMULATIVE = {
    id(options): (options[0], list(itertools.accumulate(options[1])))
    for options in (
        SEVERITIES,
        CHANNELS,
        BUSINESS_UNITS,
        LANGUAGES,
        RELATIONSHIPS,
        INVESTIGATION_COUNTS,
        SUBJECT_COUNTS,
        WITNESS_COUNTS,
    )
}


class _Generator:
    """Builds the rows of one seeding run from the seed: one random stream for cases, RIUs
    and investigations, another for the people in them."""

    def __init__(
        self,
        *,
        organization_id: int,
        seed: int,
        anchor: dt.datetime,
        days: int,
        assignee_ids: list[int],
        cases: int,
        email_domain: str,
    ) -> None:
        self.org = organization_id
        self.rng = random.Random(seed)
        # People come from their own stream, so cases, RIUs and investigations stay what
        # they were before parties existed for the same seed.
        self.people_rng = random.Random(f"parties:{seed}")
        self.people = DemoPeople(seed=seed, domain=email_domain)
        # About one recurring person per eight cases: each appears in a handful of cases
        # whatever the size of the organization.
        self.regulars = max(200, cases // 8)
        self.newcomers = self.regulars
        self.anchor = anchor
        self.days = days
        self.assignees = assignee_ids
        self.cat_names = list(CATEGORIES)
        self.cat_weights = list(itertools.accumulate(CATEGORIES[c][0] for c in self.cat_names))
        self.loc_weights = list(itertools.accumulate(loc[3] for loc in LOCATIONS))

    def custom_fields(self, category: str, country: str, region: str, severity: str) -> dict[str, Any]:
        """~15 keys, nested, varying by category; some keys missing as in real intake data."""
        rng = self.rng
        cf: dict[str, Any] = {
            "hr": {"region": region, "employee_grade": f"G{rng.randint(3, 12)}"},
            "intake": {
                "hotline_operator": rng.choice(["Navex", "In-house", "EthicsPoint"]),
                "callback_requested": rng.random() < 0.3,
            },
            "risk": {"score": round(rng.uniform(0, 10), 1), "tier": rng.choice(["tier_1", "tier_2", "tier_3"])},
        }
        if rng.random() < 0.8:
            cf["hr"]["manager_notified"] = rng.random() < 0.6
        if rng.random() < 0.35:
            cf["hr"]["union_member"] = rng.random() < 0.4
        if category in ("Fraud", "Theft", "Bribery & Corruption"):
            cf["financial"] = {
                "amount": round(rng.lognormvariate(8, 1.4), 2),
                "gl_account": f"{rng.randint(4000, 6999)}-{rng.randint(10, 99)}",
                "recovered": rng.random() < 0.25,
            }
        if category == "Data Privacy":
            cf["privacy"] = {
                "records_affected": int(rng.lognormvariate(4, 1.8)),
                "regulator_notified": rng.random() < 0.3,
                "data_types": rng.sample(["email", "health", "payroll", "address", "passport"], rng.randint(1, 3)),
            }
        if category == "Health & Safety":
            cf["safety"] = {
                "injury": rng.random() < 0.4,
                "osha_recordable": rng.random() < 0.2,
                "lost_days": rng.randint(0, 30),
            }
        if category in ("Harassment", "Discrimination", "Retaliation"):
            cf["people"] = {"witnesses": rng.randint(0, 5), "repeat_subject": rng.random() < 0.15}
        if severity in ("high", "critical") or rng.random() < 0.1:
            cf["legal"] = {
                "hold": rng.random() < 0.5,
                "counsel": rng.choice(["Internal", "Baker & Partners", "Lindqvist LLP"]),
            }
        if rng.random() < 0.5:
            cf["tags"] = rng.sample(["urgent", "board", "regulator", "repeat", "media", "exec"], rng.randint(1, 2))
        if rng.random() < 0.7:
            cf["site_code"] = f"{country}-{rng.randint(100, 999)}"
        return cf

    def _person_index(self, role: str, taken: set[int]) -> int:
        """A recurring person not yet in this case, or (usually) someone new."""
        rng = self.people_rng
        if rng.random() < RECURRING_SHARE[role]:
            index = rng.randrange(self.regulars)
            if index not in taken:
                taken.add(index)
                return index
        self.newcomers += 1
        return self.newcomers - 1

    def parties(
        self, case_id: int, anonymous: bool, relationship: str, custom_fields: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        """The reporter (unless anonymous), 1–3 subjects and 0–3 witnesses of one case."""
        rng, person = self.people_rng, self.people.person
        people_cf = custom_fields.get("people", {})
        taken: set[int] = set()
        rows: list[tuple[Any, ...]] = []
        if not anonymous:
            if relationship in EXTERNAL_RELATIONSHIPS:
                self.newcomers += 1
                reporter = person(self.newcomers - 1, external=True)
            else:
                reporter = person(self._person_index(REPORTER, taken))
            rows.append((self.org, case_id, REPORTER, *reporter))
        for number in range(_weighted(rng, SUBJECT_COUNTS)):
            # The intake flagged a repeat subject: someone who recurs across cases.
            index = rng.randrange(self.regulars) if number == 0 and people_cf.get("repeat_subject") else -1
            if index < 0 or index in taken:
                index = self._person_index(SUBJECT, taken)
            taken.add(index)
            rows.append((self.org, case_id, SUBJECT, *person(index)))
        # Agree with the intake's witness count where the category records one.
        witnesses = min(3, people_cf["witnesses"]) if "witnesses" in people_cf else _weighted(rng, WITNESS_COUNTS)
        for _ in range(witnesses):
            index = self._person_index(WITNESS, taken)
            rows.append((self.org, case_id, WITNESS, *person(index)))
        return rows

    def rows(
        self, count: int, start_case_id: int, start_riu_id: int
    ) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...], list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
        """Yield (case row, riu row, investigation rows, party rows) for ``count`` cases."""
        rng = self.rng
        span = self.days * 86400
        per_year: dict[int, int] = {}
        # Slightly more cases recently: the power skews ages towards the anchor. Cases are
        # written oldest first, as a live system inserts them (ids follow creation time).
        ages = sorted((int(span * (rng.random() ** 1.25)) for _ in range(count)), reverse=True)
        for i, age in enumerate(ages):
            created = self.anchor - dt.timedelta(seconds=age)
            reported = created - dt.timedelta(minutes=rng.randint(0, 72 * 60))
            category = rng.choices(self.cat_names, cum_weights=self.cat_weights)[0]
            subcategory = rng.choice(CATEGORIES[category][1])
            severity = _weighted(rng, SEVERITIES)
            channel = _weighted(rng, CHANNELS)
            unit = _weighted(rng, BUSINESS_UNITS)
            dept = rng.choice(DEPARTMENTS)
            country, region, sites, _ = rng.choices(LOCATIONS, cum_weights=self.loc_weights)[0]
            site = rng.choice(sites)
            relationship = _weighted(rng, RELATIONSHIPS)
            anonymous = relationship == "anonymous" or rng.random() < 0.08
            days_to_close = rng.lognormvariate(3.3, 0.8)  # median ≈ 27 days
            closed_at: dt.datetime | None = created + dt.timedelta(days=days_to_close)
            if closed_at is not None and closed_at > self.anchor:
                closed_at = None
                age_days = age / 86400
                status = "new" if age_days < 3 else rng.choice(["open", "open", "in_review"])
            else:
                status = "closed"
            n_inv = _weighted(rng, INVESTIGATION_COUNTS)
            substantiated = None
            outcome = ""
            if status == "closed":
                substantiated = rng.random() < 0.42 if n_inv else False
                outcome = rng.choice(OUTCOMES_SUBST if substantiated else OUTCOMES_NOT)
            financial = None
            if category in ("Fraud", "Theft", "Bribery & Corruption") and rng.random() < 0.85:
                financial = Decimal(rng.randint(10_000, 50_000_000)) / 100
            year = created.year
            per_year[year] = per_year.get(year, 0) + 1
            case_id, riu_id = start_case_id + i, start_riu_id + i
            reference = f"CASE-{year}-{per_year[year]:06d}"
            title = f"{subcategory} {rng.choice(TITLE_BITS).format(who=rng.choice(WHO), dept=dept, site=site)}"
            updated = closed_at or min(self.anchor, created + dt.timedelta(days=rng.randint(0, 20)))
            due = created + dt.timedelta(days={"critical": 14, "high": 30, "medium": 45, "low": 60}[severity])
            case_row = (
                case_id,
                self.org,
                reference,
                title,
                f"{subcategory} in {dept} at {site} ({country}). Reported via {channel}.",
                status,
                category,
                subcategory,
                severity,
                {"critical": "p1", "high": "p2", "medium": "p3", "low": "p4"}[severity],
                channel,
                unit,
                dept,
                country,
                region,
                site,
                reported,
                created,
                updated,
                closed_at,
                due,
                rng.choice(self.assignees) if self.assignees and rng.random() < 0.8 else None,
                anonymous,
                outcome,
                substantiated,
                financial,
                "USD",
                rng.randint(0, 100),
                category == "Retaliation" or rng.random() < 0.04,
                rng.random() < 0.12,
                rng.random() < 0.05,
                severity == "critical" or rng.random() < 0.06,
                f"COC-{rng.randint(1, 12)}.{rng.randint(1, 9)}",
                ("Investigation complete" if n_inv else "Resolved at intake") if status == "closed" else "",
                "dossier",
                f"EXT-{rng.randint(100000, 999999)}" if rng.random() < 0.3 else "",
                riu_id,
                self.custom_fields(category, country, region, severity),
            )
            riu_cf: dict[str, Any] = {"caller": {"callback_requested": rng.random() < 0.3}}
            if channel == "hotline":
                riu_cf["caller"]["call_minutes"] = rng.randint(3, 45)
            if rng.random() < 0.4:
                riu_cf["reporter_location"] = country
            riu_row = (
                riu_id,
                self.org,
                f"RIU-{year}-{per_year[year]:06d}",
                RIU_TYPES[channel],
                reported,
                relationship,
                _weighted(rng, LANGUAGES),
                anonymous,
                riu_cf,
            )
            inv_rows = []
            opened = created + dt.timedelta(days=rng.randint(0, 5))
            for number in range(1, n_inv + 1):
                inv_closed: dt.datetime | None = None
                if closed_at is not None:
                    inv_closed = min(closed_at, opened + dt.timedelta(days=rng.randint(5, 60)))
                elif rng.random() < 0.3:
                    inv_closed = min(self.anchor, opened + dt.timedelta(days=rng.randint(5, 40)))
                inv_status = "closed" if inv_closed else rng.choice(["open", "in_progress", "on_hold"])
                finding = ""
                if inv_closed:
                    finding = "substantiated" if substantiated else rng.choice(["unsubstantiated", "inconclusive"])
                inv_cf: dict[str, Any] = {"interviews": rng.randint(0, 12)}
                if rng.random() < 0.3:
                    inv_cf["legal_hold"] = True
                if rng.random() < 0.2:
                    inv_cf["external_counsel"] = rng.choice(["Baker & Partners", "Lindqvist LLP"])
                inv_rows.append(
                    (
                        self.org,
                        case_id,
                        number,
                        inv_status,
                        rng.choice(INVESTIGATORS),
                        rng.choice(ALLEGATIONS[category]),
                        opened,
                        inv_closed,
                        finding,
                        "Interviews held; documents reviewed." if inv_closed else "",
                        inv_cf,
                    )
                )
                opened = opened + dt.timedelta(days=rng.randint(1, 20))
            yield case_row, riu_row, inv_rows, self.parties(case_id, anonymous, relationship, case_row[-1])


def cases_seed(
    *,
    organization_id: int,
    cases: int,
    seed: int,
    anchor: dt.datetime,
    days: int = 730,
    assignee_ids: list[int] | None = None,
    email_domain: str = "example.com",
    batch_size: int = 20_000,
) -> SeedResult:
    """Insert ``cases`` demo cases (with RIUs, investigations and parties) into an empty
    organization; people's addresses are at ``email_domain``."""
    result = SeedResult()
    if Case.objects.filter(organization_id=organization_id).exists():
        result.skipped_reason = "the organization already has cases"
        return result
    gen = _Generator(
        organization_id=organization_id,
        seed=seed,
        anchor=anchor,
        days=days,
        assignee_ids=sorted(assignee_ids or []),
        cases=cases,
        email_domain=email_domain,
    )
    with transaction.atomic():
        case_id, riu_id = next_id(Case), next_id(RIU)
        stream = gen.rows(cases, case_id, riu_id)
        done = 0
        while done < cases:
            chunk = [next(stream) for _ in range(min(batch_size, cases - done))]
            result.rius += insert_rows(RIU, RIU_FIELDS, (c[1] for c in chunk))
            result.cases += insert_rows(Case, CASE_FIELDS, (c[0] for c in chunk))
            result.investigations += insert_rows(
                Investigation, INVESTIGATION_FIELDS, (inv for c in chunk for inv in c[2])
            )
            result.parties += insert_rows(Party, PARTY_FIELDS, (party for c in chunk for party in c[3]))
            done += len(chunk)
        reset_sequences(RIU, Case, Investigation, Party)
    if connection.vendor == "postgresql":
        # Fresh planner statistics: without them the first reports after a bulk load pick
        # nested loops over a million rows. Outside a transaction also VACUUM, as
        # autovacuum would do a while later: its visibility map lets an index answer alone.
        command = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
        with connection.cursor() as cursor:
            cursor.execute(f"{command} cases_case, cases_riu, cases_investigation, cases_party")
    return result
