"""The response cache together with failover and rate limits: a reply that a fallback target
served is stored and answered again from the cache, and a hit frees its rate-limit slot like
any finished request."""

import openai
import pytest

from chargeback.models import ConsumerGroup
from gateway.cache import clear_all
from gateway.models import UsageEvent

from .conftest import cache_on, live_db
from .routing_setup import FALLBACK, HELLO, configure, fail, two_targets

pytestmark = live_db


def _ask(oai):
    return oai.chat.completions.with_raw_response.create(model="fake-chat", messages=HELLO)


def test_a_reply_served_after_a_failover_is_cached_and_the_hit_calls_no_target(
    gw, oai, fake_pair, cache_store
):
    two_targets(gw, fake_pair)
    configure(gw, fallback=FALLBACK)
    cache_on(gw.org)
    fail(gw, "primary", "500")

    first = _ask(oai)
    second = _ask(oai)

    assert (first.headers["x-kt-cache"], second.headers["x-kt-cache"]) == ("miss", "hit")
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert (fake_pair.primary.posts, fake_pair.backup.posts) == (1, 1)
    served, hit = UsageEvent.objects.order_by("id")
    assert (served.status, served.target_id, served.cost > 0) == ("ok", "backup", True)
    assert (hit.status, hit.cost, hit.saved) == ("cache_hit", 0, served.cost)


def test_cache_hits_free_their_rate_limit_slot(gw, oai, cache_store):
    ConsumerGroup.objects.filter(pk=gw.group.pk).update(parallel_limit=1)
    clear_all()
    cache_on(gw.org)

    statuses = [_ask(oai).headers["x-kt-cache"] for _ in range(4)]

    # With one request allowed in flight, a hit that kept its slot would refuse the next (429).
    assert statuses == ["miss", "hit", "hit", "hit"]
    assert UsageEvent.objects.filter(status="cache_hit").count() == 3


def test_a_request_refused_by_its_rate_limit_is_not_looked_up_in_the_cache(gw, oai, cache_store):
    ConsumerGroup.objects.filter(pk=gw.group.pk).update(rpm_limit=1)
    clear_all()
    cache_on(gw.org)
    _ask(oai)

    with pytest.raises(openai.RateLimitError):
        _ask(oai)
    assert list(UsageEvent.objects.values_list("status", flat=True)) == ["ok"]
