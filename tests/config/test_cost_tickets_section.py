"""The config file's `cost_tickets`: the organization's mode at the top level, a group's own under
`consumer_groups[].cost_tickets` (wallets/config_section.py), through ticket_policy_set."""

import pytest

from chargeback.config import config_apply
from chargeback.errors import ConfigError
from chargeback.models import AuditLog, ConsumerGroup
from wallets.models_tickets import CostTicketPolicy
from wallets.tickets.policy import TicketPolicy, ticket_policy_for

from .test_cache_section import with_group_cache

pytestmark = pytest.mark.django_db

WAIT = "    cost_tickets: {mode: wait, wait_seconds: 120}\n"


def _apply(org, text):
    return config_apply(organization=org, text=text, actor="user:ana", via="config")


def _policy(org, group_name):
    group = ConsumerGroup.objects.get(organization=org, name=group_name)
    return ticket_policy_for(organization_id=org.pk, consumer_group_id=group.pk)


def test_the_organization_and_a_group_get_their_mode(org, seed_text):
    _apply(org, "cost_tickets: {mode: reject}\n" + with_group_cache(seed_text, WAIT))

    assert _policy(org, "support") == TicketPolicy("wait", 120)
    assert _policy(org, "engineering") == TicketPolicy("reject", 0)
    assert AuditLog.objects.filter(action="cost_ticket_policy.set", via="config").count() == 2
    # The same file again changes nothing; a file without the group's key removes its own.
    _apply(org, "cost_tickets: {mode: reject}\n" + with_group_cache(seed_text, WAIT))
    assert AuditLog.objects.filter(action="cost_ticket_policy.set").count() == 2
    _apply(org, seed_text)
    assert _policy(org, "support") == TicketPolicy("reject", 0)
    assert CostTicketPolicy.objects.filter(consumer_group__isnull=False).count() == 0


def test_without_any_setting_the_mode_is_reject(org, seed_text):
    _apply(org, seed_text)
    assert _policy(org, "support") == TicketPolicy("reject", 0)


@pytest.mark.parametrize(
    ("group_text", "key", "message"),
    [
        ("    cost_tickets: {mode: wait}\n", "mode", "mode wait needs wait_seconds"),
        ("    cost_tickets: {mode: later}\n", "mode", "later"),
        ("    cost_tickets: {mode: wait, wait_seconds: 0}\n", "wait_seconds", ""),
    ],
)
def test_a_bad_value_names_its_key_and_line(org, seed_text, group_text, key, message):
    text = with_group_cache(seed_text, group_text)
    line = text.splitlines().index(group_text.rstrip("\n")) + 1
    with pytest.raises(ConfigError) as caught:
        _apply(org, text)
    assert caught.value.path == f"consumer_groups[1].cost_tickets.{key}"
    assert caught.value.line == line
    assert message in caught.value.message
    assert not CostTicketPolicy.objects.exists()
