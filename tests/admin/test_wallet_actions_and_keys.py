"""Funding actions (through wallets/services, with a confirmation form) and key rotation,
each leaving an audit row written via the admin."""

from decimal import Decimal

from django.urls import reverse
from django.utils import timezone

from chargeback.keys import hash_key
from chargeback.models import AuditLog, ConsumerGroup
from chargeback.rotation import consumer_group_rotate_key
from tests.admin.conftest import make_event
from wallets import services
from wallets.models import LedgerEntry, Wallet

WALLETS = reverse("admin:wallets_wallet_changelist")
EVENTS = reverse("admin:gateway_usageevent_changelist")
GROUPS = reverse("admin:chargeback_consumergroup_changelist")


def run_action(client, url, action, pks, **form):
    return client.post(url, {"action": action, "_selected_action": [str(pk) for pk in pks], **form})


def test_allocate_asks_for_amount_and_reason_then_funds_through_the_ledger(acme, login):
    client = login(acme.users["finance"])
    wallet = acme.other.wallets.get()
    balance = wallet.balance

    page = run_action(client, WALLETS, "allocate", [wallet.pk], index=0)
    assert page.status_code == 200
    assert b'name="amount"' in page.content
    assert b'name="reason"' in page.content
    assert wallet.entries.count() == 1  # nothing happened yet
    token = page.context["form"].initial["token"]

    for _ in range(2):  # a double submit funds once
        done = run_action(
            client,
            WALLETS,
            "allocate",
            [wallet.pk],
            apply="1",
            amount="25.50",
            reason="Q3 top-up",
            token=token,
        )
        assert done.status_code == 302
    wallet.refresh_from_db()
    assert wallet.balance == balance + Decimal("25.50")
    entry = wallet.entries.order_by("-id").first()
    assert (entry.kind, entry.description, entry.actor) == (
        "allocation",
        "Q3 top-up",
        "acme_finance",
    )
    audit = AuditLog.objects.filter(organization=acme.org, action="wallet.allocation", via="admin")
    assert audit.get().actor == "acme_finance"


def test_reclaim_and_adjust_go_through_the_services(acme, login):
    client = login(acme.users["finance"])
    wallet = acme.other.wallets.get()
    org_wallet = Wallet.objects.get(organization=acme.org, scope="organization")
    org_balance = org_wallet.balance

    run_action(
        client,
        WALLETS,
        "reclaim",
        [wallet.pk],
        apply="1",
        amount="100",
        reason="unused",
        token="t1",
    )
    run_action(
        client,
        WALLETS,
        "adjust",
        [wallet.pk],
        apply="1",
        amount="-0.5",
        reason="provider credit",
        token="t2",
    )
    wallet.refresh_from_db()
    org_wallet.refresh_from_db()
    assert wallet.balance == Decimal("899.5")
    assert org_wallet.balance == org_balance + 100
    kinds = list(wallet.entries.order_by("id").values_list("kind", flat=True))
    assert kinds[-2:] == ["reclaim", "adjustment"]
    actions = set(
        AuditLog.objects.filter(
            organization=acme.org, via="admin", actor="acme_finance"
        ).values_list("action", flat=True)
    )
    assert {"wallet.reclaim", "wallet.adjustment"} <= actions


def test_a_refused_reclaim_changes_nothing_and_says_why(acme, login):
    client = login(acme.users["finance"])
    wallet = acme.other.wallets.get()
    response = run_action(
        client,
        WALLETS,
        "reclaim",
        [wallet.pk],
        apply="1",
        amount="5000",
        reason="too much",
        token="t",
    )
    assert response.status_code == 302
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("available" in m for m in messages)
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("1000")
    assert not LedgerEntry.objects.filter(wallet=wallet, kind="reclaim").exists()


def test_viewers_cannot_fund_wallets(acme, login):
    client = login(acme.users["viewer"])
    wallet = acme.other.wallets.get()
    run_action(
        client, WALLETS, "allocate", [wallet.pk], apply="1", amount="1", reason="x", token="t"
    )
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("1000")


def test_the_ledger_inline_shows_the_newest_entries(acme, login):
    client = login(acme.users["finance"])
    wallet = acme.owned.wallets.get()
    response = client.get(reverse("admin:wallets_wallet_change", args=[wallet.pk]))
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    created = [form.instance.created_at for form in formset.forms]
    assert created == sorted(created, reverse=True)
    assert b"acme funding" in response.content


def test_key_rotation_returns_a_new_key_once_and_keeps_the_old_one_for_the_grace(acme):
    group = ConsumerGroup.objects.get(name="acme-eng")
    old_hash = group.key_hash
    raw = consumer_group_rotate_key(group=group, grace_seconds=600, actor="ops", via="cli")
    group.refresh_from_db()
    assert raw.startswith("kt_cg_")
    assert group.key_hash == hash_key(raw)
    assert group.key_prefix == raw[:12]
    assert group.previous_key_hash == old_hash
    remaining = (group.previous_key_expires_at - timezone.now()).total_seconds()
    assert 590 < remaining <= 600
    row = AuditLog.objects.get(action="consumer_group.rotate_key", object_id=str(group.pk))
    assert (row.actor, row.via) == ("ops", "cli")
    assert old_hash not in str(row.before) + str(row.after)


def test_key_rotation_from_the_admin_shows_the_key_once_and_never_the_hash(acme, login):
    client = login(acme.users["owner"])
    group = ConsumerGroup.objects.get(name="acme-eng")
    listing = client.get(GROUPS)
    assert group.key_prefix.encode() in listing.content
    assert group.key_hash.encode() not in listing.content
    change = client.get(reverse("admin:chargeback_consumergroup_change", args=[group.pk]))
    assert group.key_hash.encode() not in change.content

    response = run_action(client, GROUPS, "rotate_key", [group.pk], index=0)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    ((shown_group, raw),) = response.context["keys"]
    assert shown_group.pk == group.pk
    assert raw.encode() in response.content
    group.refresh_from_db()
    assert group.key_hash == hash_key(raw)
    assert raw.encode() not in client.get(GROUPS).content  # shown once only
    audit = AuditLog.objects.get(action="consumer_group.rotate_key", object_id=str(group.pk))
    assert (audit.actor, audit.via) == ("acme_owner", "admin")


def test_finance_cannot_rotate_keys(acme, login):
    client = login(acme.users["finance"])
    group = ConsumerGroup.objects.get(name="acme-eng")
    before = group.key_hash
    run_action(client, GROUPS, "rotate_key", [group.pk], index=0)
    group.refresh_from_db()
    assert group.key_hash == before


def test_a_refused_funding_action_leaves_no_audit_row(acme, login):
    client = login(acme.users["finance"])
    wallet = acme.other.wallets.get()
    before = AuditLog.objects.filter(organization=acme.org).count()
    run_action(
        client, WALLETS, "adjust", [wallet.pk], apply="1", amount="-5000", reason="x", token="t"
    )
    assert AuditLog.objects.filter(organization=acme.org).count() == before


def _charged_call(tenant, request_id, cost):
    """A call really charged to the tenant's `other` wallet (hold, capture, event)."""
    wallet = tenant.other.wallets.get()
    hold = services.hold_place(wallet=wallet, amount=Decimal("1"), request_id=request_id)
    services.hold_capture(hold=hold, amount=Decimal(cost))
    event = make_event(
        tenant.org, tenant.other, marker=tenant.marker, cost=cost, request_id=request_id
    )
    return wallet, event


def test_finance_refunds_a_call_from_the_usage_events_once(acme, login):
    wallet, event = _charged_call(acme, "req-acme-refund", "0.80")
    before = Wallet.objects.get(pk=wallet.pk).balance
    client = login(acme.users["finance"])

    page = run_action(client, EVENTS, "refund", [event.pk], index=0)
    assert page.status_code == 200
    assert b'name="reason"' in page.content
    assert b"req-acme-refund" in page.content
    token = page.context["form"].initial["token"]
    for _ in range(2):  # a double submit refunds once
        done = run_action(
            client, EVENTS, "refund", [event.pk], apply="1", amount="", reason="credit", token=token
        )
        assert done.status_code == 302
    assert Wallet.objects.get(pk=wallet.pk).balance == before + Decimal("0.80")
    entry = LedgerEntry.objects.get(wallet=wallet, kind="refund")
    assert (entry.reference, entry.description) == ("req-acme-refund", "credit")
    audit = AuditLog.objects.get(organization=acme.org, action="wallet.refund")
    assert (audit.actor, audit.via) == ("acme_finance", "admin")

    again = run_action(
        client, EVENTS, "refund", [event.pk], apply="1", amount="0.01", reason="x", token="t2"
    )
    assert again.status_code == 302
    assert LedgerEntry.objects.filter(wallet=wallet, kind="refund").count() == 1


def test_budget_owners_and_viewers_cannot_refund(acme, outsider, login):
    wallet, event = _charged_call(acme, "req-acme-norefund", "0.50")
    for role in ("budget_owner", "viewer"):
        client = login(acme.users[role])
        page = client.get(EVENTS)
        assert b'value="refund"' not in page.content
        run_action(
            client, EVENTS, "refund", [event.pk], apply="1", amount="", reason="x", token=role
        )
    assert not LedgerEntry.objects.filter(wallet=wallet, kind="refund").exists()
    # And the outsider's finance staff never reach acme's call.
    client = login(outsider.users["finance"])
    run_action(client, EVENTS, "refund", [event.pk], apply="1", amount="", reason="x", token="o")
    assert not LedgerEntry.objects.filter(wallet=wallet, kind="refund").exists()
