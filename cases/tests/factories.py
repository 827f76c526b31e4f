"""Factories for the case domain."""

from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone

from cases.models import RIU, Case, Investigation
from organizations.tests.factories import OrganizationFactory


class RIUFactory(factory.django.DjangoModelFactory[RIU]):
    class Meta:
        model = RIU

    organization = factory.SubFactory(OrganizationFactory)
    reference = factory.Sequence(lambda n: f"RIU-2026-{n:06d}")
    riu_type = "hotline_report"
    received_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=3))
    reporter_relationship = "employee"
    custom_fields = factory.LazyFunction(lambda: {"caller": {"callback_requested": True}})


class CaseFactory(factory.django.DjangoModelFactory[Case]):
    class Meta:
        model = Case

    organization = factory.SubFactory(OrganizationFactory)
    reference = factory.Sequence(lambda n: f"CASE-2026-{n:06d}")
    title = factory.Sequence(lambda n: f"Expense fraud report {n}")
    status = "open"
    category = "Fraud"
    subcategory = "Expense fraud"
    severity = "high"
    business_unit = "Retail"
    country = "GB"
    region = "EMEA"
    reported_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=2))
    created_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=1))
    primary_riu = factory.SubFactory(RIUFactory, organization=factory.SelfAttribute("..organization"))
    custom_fields = factory.LazyFunction(lambda: {"hr": {"region": "EMEA"}})


class InvestigationFactory(factory.django.DjangoModelFactory[Investigation]):
    class Meta:
        model = Investigation

    case = factory.SubFactory(CaseFactory)
    organization = factory.SelfAttribute("case.organization")
    number = factory.Sequence(lambda n: n + 1)
    status = "open"
    investigator = "Dana Whitfield"
    allegation_type = "Falsified records"
    opened_at = factory.LazyFunction(timezone.now)
