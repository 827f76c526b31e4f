"""Factories for the case domain."""

from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone

from cases.demo_people import email_local_part
from cases.models import RIU, Case, Investigation, Party, PartyRole
from organizations.tests.factories import OrganizationFactory

# Coprime lengths: 77 distinct names before one repeats. Names with diacritics and an
# apostrophe, so that tests meet the text real cases hold.
_FIRST_NAMES = ["Zoë", "José", "Siobhán", "Łukasz", "Grace", "Oğuz", "Amara"]
_LAST_NAMES = [
    "Ångström",
    "Núñez",
    "O'Brien",
    "Dvořák",
    "Okafor",
    "Müller",
    "Nguyễn",
    "Lindqvist",
    "Søndergaard",
    "Yılmaz",
    "Kowalczyk",
]


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


class PartyFactory(factory.django.DjangoModelFactory[Party]):
    """A person in a case: a subject, or ``PartyFactory(reporter=True)`` /
    ``PartyFactory(witness=True)``. Emails and employee ids are unique; names repeat only
    after 77 parties and mostly carry diacritics."""

    class Meta:
        model = Party

    class Params:
        reporter = factory.Trait(role=PartyRole.REPORTER)
        witness = factory.Trait(role=PartyRole.WITNESS)

    case = factory.SubFactory(CaseFactory)
    organization = factory.SelfAttribute("case.organization")
    role = PartyRole.SUBJECT
    full_name = factory.Sequence(lambda n: f"{_FIRST_NAMES[n % 7]} {_LAST_NAMES[n % 11]}")
    email = factory.LazyAttributeSequence(
        lambda p, n: ".".join(email_local_part(w) for w in p.full_name.split()) + f".{n}@acme.example.com"
    )
    phone = factory.Sequence(lambda n: f"+44770090{n % 10000:04d}")
    employee_id = factory.Sequence(lambda n: f"E{20000 + n}")
    job_title = "Procurement specialist"
