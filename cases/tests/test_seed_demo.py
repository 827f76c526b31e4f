from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import F

from audit.models import AuditEvent
from cases.demo_people import DemoPeople, email_local_part
from cases.models import RIU, Case, Investigation, Party
from organizations.models import Membership, Organization

pytestmark = pytest.mark.django_db

CASE_VALUES = [
    "reference",
    "title",
    "status",
    "category",
    "severity",
    "business_unit",
    "country",
    "created_at",
    "closed_at",
    "financial_impact",
    "is_substantiated",
    "custom_fields",
    "primary_riu__reference",
    "primary_riu__custom_fields",
]


def snapshot(slug):
    cases = list(Case.objects.filter(organization__slug=slug).order_by("reference").values_list(*CASE_VALUES))
    invs = list(
        Investigation.objects.filter(organization__slug=slug)
        .order_by("case__reference", "number")
        .values_list("case__reference", "number", "status", "investigator", "finding", "custom_fields")
    )
    parties = [
        # Addresses are at the organization's own domain (``<slug>.example.com``).
        (*row[:3], row[3].replace(f"@{slug}.", "@org."), *row[4:])
        for row in Party.objects.filter(organization__slug=slug)
        .order_by("case__reference", "id")
        .values_list("case__reference", "role", "full_name", "email", "phone", "employee_id", "job_title")
    ]
    return cases, invs, parties


def test_same_seed_gives_identical_data_and_other_seed_differs():
    for slug, seed in (("one", 7), ("two", 7), ("three", 8)):
        call_command(
            "seed_demo", "--org", slug, "--cases", "300", "--seed", str(seed), "--anchor", "2026-06-30", "--no-users"
        )
    one, two, three = snapshot("one"), snapshot("two"), snapshot("three")
    assert len(one[0]) == 300 and len(one[1]) > 100 and len(one[2]) > 900
    assert one == two
    assert one != three


def test_seed_is_realistic():
    call_command("seed_demo", "--org", "acme", "--cases", "2000", "--anchor", "2026-06-30", "--no-users")
    cases = Case.objects.filter(organization__slug="acme")
    assert cases.values("category").distinct().count() == 10
    assert set(cases.values_list("severity", flat=True)) == {"low", "medium", "high", "critical"}
    closed = cases.filter(status="closed").count()
    assert 0.6 < closed / 2000 < 0.98
    assert cases.filter(closed_at__isnull=False).count() == closed
    counts = {n: 0 for n in range(5)}
    for case in cases.prefetch_related("investigations"):
        counts[len(case.investigations.all())] += 1
        assert case.primary_riu_id is not None
    assert all(counts[n] > 0 for n in range(5)) and sum(counts.values()) == 2000
    keys = set()
    for cf in cases.values_list("custom_fields", flat=True):
        stack = [("", cf)]
        while stack:
            prefix, obj = stack.pop()
            for k, v in obj.items():
                (stack.append((f"{prefix}{k}.", v)) if isinstance(v, dict) else keys.add(prefix + k))
    assert len(keys) >= 15
    assert RIU.objects.filter(organization__slug="acme").count() == 2000


def test_seed_twice_adds_nothing_and_users_keep_password():
    User = get_user_model()
    User.objects.create_user("officer", password="mine-already", is_staff=False)
    call_command("seed_demo", "--cases", "50", "--anchor", "2026-06-30")
    parties = Party.objects.count()
    call_command("seed_demo", "--cases", "50", "--anchor", "2026-06-30")
    org = Organization.objects.get(slug="acme")
    assert Case.objects.filter(organization=org).count() == 50
    assert 150 <= Party.objects.count() == parties
    assert Membership.objects.filter(organization=org).count() == 3
    assert dict(Membership.objects.filter(organization=org).values_list("user__username", "role")) == {
        "admin": "admin",
        "officer": "officer",
        "viewer": "viewer",
    }
    assert User.objects.get(username="officer").check_password("mine-already")
    assert User.objects.get(username="viewer").check_password("dossier-demo")
    assert User.objects.get(username="officer").is_staff
    # Only the demo admin may reveal identities; granted once, audited once.
    cleared = Membership.objects.filter(organization=org, identity_access=True).values_list("user__username", flat=True)
    assert list(cleared) == ["admin"]
    granted = AuditEvent.objects.filter(organization=org, action="membership.updated")
    assert [e.details["changed"] for e in granted] == [{"identity_access": {"before": False, "after": True}}]


def test_negative_count_is_an_error():
    with pytest.raises(CommandError, match="must be 0 or more"):
        call_command("seed_demo", "--cases", "-5")
    assert not Organization.objects.exists()


def test_bad_arguments_exit_non_zero_with_a_readable_line():
    result = subprocess.run([sys.executable, "manage.py", "seed_demo", "--cases", "-5"], capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].endswith("argument --cases: must be 0 or more, not -5")


def test_seed_creates_parties_of_the_right_shape():
    call_command("seed_demo", "--org", "acme", "--cases", "1500", "--anchor", "2026-06-30", "--no-users")
    cases = {c.pk: c for c in Case.objects.select_related("primary_riu")}
    parties = list(Party.objects.all())
    roles: dict[int, Counter[str]] = {pk: Counter() for pk in cases}
    for party in parties:
        roles[party.case_id][party.role] += 1
    for pk, case in cases.items():
        assert case.primary_riu.is_anonymous == case.is_anonymous
        assert roles[pk]["reporter"] == (0 if case.is_anonymous else 1), case.reference
        assert 1 <= roles[pk]["subject"] <= 3 and 0 <= roles[pk]["witness"] <= 3
    assert {r["subject"] for r in roles.values()} == {1, 2, 3}
    assert {r["witness"] for r in roles.values()} == {0, 1, 2, 3}
    assert 150 < sum(c.is_anonymous for c in cases.values()) < 750
    assert 3 <= len(parties) / len(cases) <= 4
    assert not Party.objects.exclude(organization=F("case__organization")).exists()
    # Realistic details: non-ASCII names, addresses at reserved domains, E.164 phones.
    assert sum(not p.full_name.isascii() for p in parties) > len(parties) / 4
    assert any("Ø" in p.full_name or "ø" in p.full_name or "Å" in p.full_name for p in parties)
    for p in parties:
        assert re.fullmatch(r"[a-z]+\.[a-z]+\d*@(acme\.example\.com|mail\.example\.net)", p.email), p.email
        assert re.fullmatch(r"\+[1-9]\d{9,13}", p.phone), p.phone
        assert p.full_name == p.full_name.strip() and p.job_title
        # Only customers and suppliers who report have no employee id.
        if p.employee_id:
            assert re.fullmatch(r"E\d{5,}", p.employee_id) and p.email.endswith("@acme.example.com")
        else:
            assert p.role == "reporter" and p.email.endswith("@mail.example.net")
            assert cases[p.case_id].primary_riu.reporter_relationship in ("vendor", "customer")
    # People recur across cases with identical details, never twice in one case.
    appearances: dict[str, set[int]] = defaultdict(set)
    details: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for p in parties:
        assert p.case_id not in appearances[p.email], p.email
        appearances[p.email].add(p.case_id)
        details[p.email].add((p.full_name, p.phone, p.employee_id, p.job_title))
    recurring = [email for email, seen in appearances.items() if len(seen) > 1]
    assert len(recurring) > 50
    assert any(len(appearances[email]) >= 4 for email in recurring)
    assert all(len(d) == 1 for d in details.values())
    assert len({d for ds in details.values() for d in ds}) == len(details)  # one email, one person
    assert len({p.employee_id for p in parties if p.employee_id}) == len({p.email for p in parties if p.employee_id})
    # A repeat subject flagged at intake is one of the recurring people.
    flagged = [pk for pk, c in cases.items() if c.custom_fields.get("people", {}).get("repeat_subject")]
    assert flagged
    for pk in flagged:
        first_subject = next(p for p in parties if p.case_id == pk and p.role == "subject")
        assert int(first_subject.employee_id[1:]) < 10000 + 200  # the recurring people's indexes


def test_demo_people_are_a_function_of_seed_and_index():
    people = DemoPeople(seed=7, domain="acme.example.com")
    assert people.person(12) == DemoPeople(seed=7, domain="acme.example.com").person(12)
    assert people.person(12) != DemoPeople(seed=8, domain="acme.example.com").person(12)
    emails = [people.person(i)[1] for i in range(2 * people.combos + 10)]
    assert len(set(emails)) == len(emails)
    assert email_local_part("Zoë Ångström") == "zoeangstrom"
    assert email_local_part("Søren O'Brien-Łukasz") == "sorenobrienlukasz"
    name, email, phone, employee_id, title = people.person(3, external=True)
    assert employee_id == "" and email.endswith("@mail.example.net") and title
