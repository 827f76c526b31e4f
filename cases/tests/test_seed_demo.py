from __future__ import annotations

import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from cases.models import RIU, Case, Investigation
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
    return cases, invs


def test_same_seed_gives_identical_data_and_other_seed_differs():
    for slug, seed in (("one", 7), ("two", 7), ("three", 8)):
        call_command(
            "seed_demo", "--org", slug, "--cases", "300", "--seed", str(seed), "--anchor", "2026-06-30", "--no-users"
        )
    one, two, three = snapshot("one"), snapshot("two"), snapshot("three")
    assert len(one[0]) == 300 and len(one[1]) > 100
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
    call_command("seed_demo", "--cases", "50", "--anchor", "2026-06-30")
    org = Organization.objects.get(slug="acme")
    assert Case.objects.filter(organization=org).count() == 50
    assert Membership.objects.filter(organization=org).count() == 3
    assert dict(Membership.objects.filter(organization=org).values_list("user__username", "role")) == {
        "admin": "admin",
        "officer": "officer",
        "viewer": "viewer",
    }
    assert User.objects.get(username="officer").check_password("mine-already")
    assert User.objects.get(username="viewer").check_password("dossier-demo")
    assert User.objects.get(username="officer").is_staff


def test_negative_count_is_an_error():
    with pytest.raises(CommandError, match="must be 0 or more"):
        call_command("seed_demo", "--cases", "-5")
    assert not Organization.objects.exists()


def test_bad_arguments_exit_non_zero_with_a_readable_line():
    result = subprocess.run([sys.executable, "manage.py", "seed_demo", "--cases", "-5"], capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].endswith("argument --cases: must be 0 or more, not -5")
