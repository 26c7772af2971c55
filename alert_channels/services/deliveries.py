"""Publishing an event to the channels that want it, and delivering it, each exactly once.

`event_publish` is called by the apps above (budgets, reports) with the facts of their e-mail.
It may be called any number of times for one event (a retried e-mail task, the hourly sweep,
20 requests crossing a threshold at once): every (channel, event_key) is one ChannelDelivery row
under a unique constraint, created with get_or_create, and only the call that created the row
enqueues its sending (after commit, so the worker never reads a row that is not there yet).

`delivery_send` locks its row with SELECT ... FOR UPDATE SKIP LOCKED and re-reads its status, as
the e-mails do (budgets/delivery.py): a second runner skips a row being sent or finds it sent.
The lock is held during the POST, which is bounded by TIMEOUT.
"""

import logging
import uuid
from datetime import datetime, timedelta

import httpx
from celery import shared_task
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from alert_channels import payloads
from alert_channels.models import TEST, AlertChannel, ChannelDelivery
from alert_channels.services.channels import channel_secret
from chargeback.audit import audit_record
from chargeback.errors import NotConfigured
from chargeback.secretbox import SecretUnreadable
from gateway.egress import guard, refusal_of

logger = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
EVENT_NAMESPACE = uuid.UUID("5b0e7c52-6a43-4e0c-9a37-3c1f0c2f9f11")
RESEND_AFTER = timedelta(minutes=10)
RESEND_WITHIN = timedelta(days=35)


class DeliveryFailed(Exception):
    """The receiver did not take the event (network error, timeout, non-2xx): retried."""


def event_id_of(organization_id: int, event_key: str) -> uuid.UUID:
    """The event's id: the same for every channel and every publication of the event."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{organization_id}:{event_key}")


def channels_for(
    *, organization_id: int, department_id: int | None, budget_period: str | None, event_type: str
) -> list[AlertChannel]:
    """The active channels of the organization that take this event: organization-wide ones,
    the department's, and the department's budget of `budget_period` (budget events only)."""
    scope = Q(department__isnull=True)
    if department_id is not None:
        scope |= Q(department_id=department_id, budget_period="")
        if budget_period:
            scope |= Q(department_id=department_id, budget_period=budget_period)
    found = AlertChannel.objects.filter(scope, organization_id=organization_id, is_active=True)
    return [c for c in found.order_by("pk") if not c.events or event_type in c.events]


def _enqueue(delivery_id: int) -> None:
    def send():
        try:
            deliver.delay(delivery_id)
        except Exception:  # a broker outage must not fail the caller; the sweep resends
            logger.exception(
                "could not enqueue channel delivery %s; the hourly run will", delivery_id
            )

    transaction.on_commit(send)


def event_publish(
    *,
    organization_id: int,
    event_type: str,
    event_key: str,
    facts: dict,
    occurred_at: datetime,
    department_id: int | None = None,
    budget_period: str | None = None,
    channels: list[AlertChannel] | None = None,
) -> list[ChannelDelivery]:
    """Create the deliveries of one event (one per channel that takes it and has none yet) and
    enqueue them. Returns the deliveries this call created."""
    if channels is None:
        channels = channels_for(
            organization_id=organization_id,
            department_id=department_id,
            budget_period=budget_period,
            event_type=event_type,
        )
    if not channels:
        return []
    event_id = event_id_of(organization_id, event_key)
    body = {
        "id": str(event_id),
        "type": event_type,
        "time": occurred_at.isoformat().replace("+00:00", "Z"),
        "data": facts,
    }
    created = []
    with transaction.atomic():
        for channel in channels:
            delivery, is_new = ChannelDelivery.objects.get_or_create(
                channel=channel,
                event_key=event_key,
                defaults={
                    "organization_id": organization_id,
                    "event_id": event_id,
                    "event_type": event_type,
                    "body": body,
                },
            )
            if is_new:
                created.append(delivery)
                _enqueue(delivery.pk)
    return created


def _post(channel: AlertChannel, body: dict) -> int:
    """POST the event; the response code, or DeliveryFailed."""
    if channel.kind == AlertChannel.Kind.SLACK:
        content, headers = payloads.slack_request(body=body)
    else:
        content, headers = payloads.webhook_request(body=body, secret=channel_secret(channel))
    scheme = httpx.URL(channel.url).scheme
    transport = guard(httpx.HTTPTransport(), scheme)  # the gateway's SSRF guard, per connection
    try:
        with httpx.Client(transport=transport, timeout=TIMEOUT, follow_redirects=False) as client:
            response = client.post(channel.url, content=content, headers=headers)
    except httpx.HTTPError as exc:
        refused = refusal_of(exc)
        reason = refused.reason if refused else f"{type(exc).__name__}: {exc}"
        raise DeliveryFailed(reason) from None
    if not 200 <= response.status_code < 300:
        failure = DeliveryFailed(f"HTTP {response.status_code}: {response.text[:300]}")
        failure.response_code = response.status_code
        raise failure
    return response.status_code


def delivery_send(*, delivery_id: int) -> int:
    """Send one delivery unless it is sent or being sent: 1 if sent now, 0 if skipped. Records
    each attempt (status, attempts, response code, last error); raises DeliveryFailed after
    recording it, so the task retries."""
    with transaction.atomic():
        delivery = (
            ChannelDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("channel")
            .filter(pk=delivery_id)
            .exclude(status=ChannelDelivery.Status.SENT)
            .first()
        )
        if delivery is None:
            return 0
        rows = ChannelDelivery.objects.filter(pk=delivery.pk)
        if not delivery.channel.is_active:
            rows.update(status=ChannelDelivery.Status.FAILED, last_error="the channel is off")
            return 0
        try:
            code = _post(delivery.channel, delivery.body)
        except (DeliveryFailed, SecretUnreadable, NotConfigured) as exc:
            rows.update(
                status=ChannelDelivery.Status.FAILED,
                attempts=F("attempts") + 1,
                response_code=getattr(exc, "response_code", None),
                last_error=str(exc)[:2000] or type(exc).__name__,
            )
            if not isinstance(exc, DeliveryFailed):
                return 0  # the operator's key problem: a retry would not help
            failure = exc
        else:
            rows.update(
                status=ChannelDelivery.Status.SENT,
                attempts=F("attempts") + 1,
                response_code=code,
                last_error="",
                sent_at=timezone.now(),
            )
            return 1
    raise failure  # after the commit, so the record survives the retry


def channel_test_send(
    *, channel: AlertChannel, actor: str = "", via: str = "api"
) -> ChannelDelivery:
    """A `test` event to this channel alone (a delivery of its own, recorded like any other)."""
    organization = channel.organization
    facts = {
        "subject": f"Test event for the {channel.name} channel of {organization.name}",
        "headline": "If you can read this, the channel works.",
        "channel": channel.name,
    }
    with transaction.atomic():
        (delivery,) = event_publish(
            organization_id=organization.pk,
            event_type=TEST,
            event_key=f"test:{uuid.uuid4()}",
            facts=facts,
            occurred_at=timezone.now(),
            channels=[channel],
        )
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="alert_channel.test",
            obj=channel,
        )
    return delivery


def delivery_redeliver(*, delivery: ChannelDelivery, actor: str = "", via: str = "api") -> None:
    """Send a delivery again (the same event id and body, signed anew), e.g. after the receiver
    was fixed; receivers deduplicate by the event id."""
    with transaction.atomic():
        ChannelDelivery.objects.filter(pk=delivery.pk).update(status=ChannelDelivery.Status.PENDING)
        audit_record(
            organization=delivery.channel.organization,
            actor=actor,
            via=via,
            action="channel_delivery.redeliver",
            obj=delivery,
        )
        _enqueue(delivery.pk)


def deliveries_resend_stale(*, now: datetime | None = None) -> int:
    """The hourly safety net (from budgets' hourly run): enqueue deliveries still pending after
    ten minutes, or failed, from the last 35 days. Sending is idempotent."""
    now = now or timezone.now()
    stale = Q(status=ChannelDelivery.Status.FAILED) | Q(
        status=ChannelDelivery.Status.PENDING, created_at__lt=now - RESEND_AFTER
    )
    ids = list(
        ChannelDelivery.objects.filter(stale, created_at__gte=now - RESEND_WITHIN)
        .filter(channel__is_active=True)
        .values_list("pk", flat=True)
    )
    for delivery_id in ids:
        _enqueue(delivery_id)
    return len(ids)


# The task lives beside the service it runs and enqueues (alert_channels/tasks.py only imports
# it for Celery): exponential backoff (1 s, 2 s, 4 s ... capped at ten minutes, jittered), 15
# retries: about an hour, as the e-mails; the hourly run (budgets.evaluate_all) enqueues what is
# still failed. Safe to run twice: delivery_send locks and re-checks.
@shared_task(
    name="alert_channels.deliver",
    autoretry_for=(DeliveryFailed,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=15,
)
def deliver(delivery_id: int) -> int:
    return delivery_send(delivery_id=delivery_id)
