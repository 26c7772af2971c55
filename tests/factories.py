"""Factories in one place: organization → department → consumer group → wallet."""

from datetime import UTC, datetime
from decimal import Decimal

import factory

from chargeback.keys import hash_key, key_prefix
from chargeback.models import AdminToken, ConsumerGroup, Department, Organization, ProviderTarget
from gateway.models import Price
from wallets.models import Wallet


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department

    organization = factory.SubFactory(OrganizationFactory)
    team_id = factory.Sequence(lambda n: f"team_{n}")
    name = factory.LazyAttribute(lambda o: o.team_id.replace("team_", "").title())
    owner_emails = factory.LazyAttribute(lambda o: [f"lead@{o.team_id.replace('_', '-')}.example"])


class ConsumerGroupFactory(factory.django.DjangoModelFactory):
    """Pass `key="kt_cg_..."` to know the raw key; it is stored hashed."""

    class Meta:
        model = ConsumerGroup
        exclude = ["key"]

    organization = factory.LazyAttribute(lambda o: o.department.organization)
    department = factory.SubFactory(DepartmentFactory)
    name = factory.Sequence(lambda n: f"group-{n}")
    key = factory.Sequence(lambda n: f"kt_cg_test_{n}")
    key_prefix = factory.LazyAttribute(lambda o: key_prefix(o.key))
    key_hash = factory.LazyAttribute(lambda o: hash_key(o.key))


class AdminTokenFactory(factory.django.DjangoModelFactory):
    """Pass `raw="kt_admin_..."` to know the token; it is stored hashed."""

    class Meta:
        model = AdminToken
        exclude = ["raw"]

    organization = factory.SubFactory(OrganizationFactory)
    name = "test token"
    raw = factory.Sequence(lambda n: f"kt_admin_test_{n}")
    token_prefix = factory.LazyAttribute(lambda o: key_prefix(o.raw))
    token_hash = factory.LazyAttribute(lambda o: hash_key(o.raw))


class ProviderTargetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProviderTarget

    organization = factory.SubFactory(OrganizationFactory)
    target_id = "fake"
    provider = "fake"


class TeamWalletFactory(factory.django.DjangoModelFactory):
    """An empty team wallet; fund it through wallets.services so the ledger stays the truth."""

    class Meta:
        model = Wallet

    department = factory.SubFactory(DepartmentFactory)
    organization = factory.LazyAttribute(lambda o: o.department.organization)
    scope = Wallet.Scope.TEAM
    name = factory.LazyAttribute(lambda o: o.department.team_id)


class PriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Price

    provider = "fake"
    model = factory.Sequence(lambda n: f"fake-model-{n}")
    input_per_mtok = Decimal("2.500000")
    output_per_mtok = Decimal("10.000000")
    cached_input_per_mtok = Decimal("1.250000")
    max_output_tokens = 4096
    effective_from = datetime(2020, 1, 1, tzinfo=UTC)
