"""Factories for export jobs and an organization with realistic, tag-configured cases."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory

from cases.tests.factories import CaseFactory, InvestigationFactory, RIUFactory
from exports.models import ExportJob
from organizations.tests.factories import OrganizationFactory
from tagging.models import TagSlot


class ExportJobFactory(factory.django.DjangoModelFactory[ExportJob]):
    class Meta:
        model = ExportJob

    organization = factory.SubFactory(OrganizationFactory)
    dataset = "cases"
    format = "csv"
    filters = factory.LazyFunction(lambda: {"created_from": None, "created_to": None, "period": None})
    columns = factory.LazyFunction(dict)


TAGS = [
    (1, "HR region", "case", "custom_fields.hr.region", "text"),
    (2, "Loss amount", "case", "custom_fields.financial.amount", "number"),
    (3, "Hold", "investigation", "custom_fields.legal_hold", "boolean"),
    (4, "Reporter", "riu", "reporter_relationship", "text"),
    (5, "Flags", "case", "custom_fields.tags", "list"),
]


def org_with_cases(slug="acme", timezone="Europe/London"):
    """An organization with 5 varied cases, investigations, RIUs and 5 tag slots."""
    org = OrganizationFactory(slug=slug, name=slug.title(), timezone=timezone)
    for slot, label, entity, path, data_type in TAGS:
        TagSlot.objects.create(
            organization=org, slot=slot, label=label, source_entity=entity, field_path=path, data_type=data_type
        )
    base = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)
    specs = [
        dict(
            title='=HYPERLINK("http://evil")',
            status="open",
            severity="high",
            financial_impact=Decimal("-12.50"),
            custom_fields={"hr": {"region": "EMEA"}, "financial": {"amount": 1500.25}, "tags": ["urgent", "board"]},
            n_inv=2,
        ),
        dict(
            title="+cmd|' /C calc'!A0",
            status="closed",
            severity="low",
            financial_impact=Decimal("99999.99"),
            closed_at=base + dt.timedelta(days=20),
            is_substantiated=True,
            custom_fields={"hr": {"region": "AMER"}, "financial": {"amount": "n/a"}},
            n_inv=4,
        ),
        dict(title="@SUM(A1:A2)", status="in_review", severity="critical", custom_fields={}, n_inv=0),
        dict(title="-2+3", status="new", severity="medium", custom_fields={"hr": {"region": "APAC"}}, n_inv=1),
        dict(
            title='Plain title, with comma and "quotes"\nand a newline',
            status="open",
            severity="medium",
            custom_fields={"tags": []},
            n_inv=1,
        ),
    ]
    cases = []
    for i, spec in enumerate(specs):
        n_inv = spec.pop("n_inv")
        riu = RIUFactory(
            organization=org, reporter_relationship=["employee", "vendor", "customer", "anonymous", "contractor"][i]
        )
        case = CaseFactory(
            organization=org,
            reference=f"CASE-2026-{i + 1:06d}",
            primary_riu=riu,
            created_at=base + dt.timedelta(days=i),
            reported_at=base,
            **spec,
        )
        for n in range(1, n_inv + 1):
            InvestigationFactory(
                case=case,
                number=n,
                status="closed" if n % 2 else "open",
                finding="substantiated" if n == 1 else "",
                custom_fields={"legal_hold": n == n_inv},
            )
        cases.append(case)
    return org, cases
