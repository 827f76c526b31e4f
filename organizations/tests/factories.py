"""Factories for users, organizations and memberships."""

from __future__ import annotations

import factory
from django.contrib.auth.models import User

from organizations.models import Membership, Organization, Role


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "pw")

    @factory.post_generation
    def _save(obj: User, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            obj.save()


class OrganizationFactory(factory.django.DjangoModelFactory[Organization]):
    class Meta:
        model = Organization
        django_get_or_create = ["slug"]

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")
    timezone = "Europe/London"


class MembershipFactory(factory.django.DjangoModelFactory[Membership]):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.OFFICER


def member(organization: Organization, role: str = Role.OFFICER, username: str | None = None):  # type: ignore[no-untyped-def]
    """A staff user with ``role`` in ``organization``."""
    kwargs = {"username": username} if username else {}
    return MembershipFactory(organization=organization, role=role, user=UserFactory(**kwargs)).user
