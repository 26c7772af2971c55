from decimal import Decimal

import pytest
from django.core import mail

from budgets.models import BudgetAlert, WalletAlert
from chargeback.errors import InsufficientFunds
from tests.budgets.conftest import mail_to
from tests.budgets.helpers import record_spend
from wallets import services as wallet_services
from wallets.models import Hold

pytestmark = pytest.mark.django_db


def _states():
    return list(WalletAlert.objects.order_by("pk").values_list("state", "status"))


def test_a_wallet_turning_low_then_depleted_emails_once_per_change(budget, support, spend):
    # The wallet holds 5,000.00; the budget (1,000.00) alerts too, so look at wallet mail only.
    spend(department=support, amount="4500")  # 500 left = 10 %: not yet low
    assert _states() == []
    spend(department=support, amount="0.01")  # under 10 % of the last allocation
    spend(department=support, amount="100")
    assert _states() == [("low", "sent")]
    spend(department=support, amount="399.99")  # nothing left
    spend(department=support, amount="0")
    assert _states() == [("low", "sent"), ("depleted", "sent")]

    wallet_mail = [m for m in mail.outbox if "Wallet" in m.subject]
    assert len(wallet_mail) == 2
    assert wallet_mail[0].subject == "[Support] Wallet team_support is low: 499.99 USD available"
    assert wallet_mail[0].to == ["lead@example.com"]  # the budget's owners
    assert "Last allocation:  5,000.00 USD" in wallet_mail[0].body
    assert "is depleted" in wallet_mail[1].subject
    assert wallet_mail[1].alternatives[0][1] == "text/html"


def test_wallet_alerts_stay_with_their_own_wallet_and_organization(
    budget, support, support_wallet, outsider_budget, outsider_support, spend, run_hourly
):
    # The outsider's team_support wallet (same name, same 5,000.00) runs dry first.
    spend(department=outsider_support, amount="4600")
    spend(department=outsider_support, amount="400")
    theirs = wallet_services.wallet_for_team(department=outsider_support)
    assert list(
        WalletAlert.objects.order_by("pk").values_list("wallet_id", "state", "organization_id")
    ) == [
        (theirs.pk, "low", outsider_support.organization_id),
        (theirs.pk, "depleted", outsider_support.organization_id),
    ]
    spend(department=support, amount="100")  # this wallet: 4,900.00 of 5,000.00, healthy
    run_hourly()
    assert not WalletAlert.objects.filter(wallet=support_wallet).exists()
    assert not [m for m in mail_to("lead@example.com") if "Wallet" in m.subject]
    wallet_mail = [m for m in mail.outbox if "Wallet" in m.subject]
    assert [m.to for m in wallet_mail] == [["lead@outsider.example"]] * 2

    spend(department=support, amount="4500.01")  # now this one is low: its own alert, its owners
    [ours] = [m for m in mail_to("lead@example.com") if "Wallet" in m.subject]
    assert ours.subject == "[Support] Wallet team_support is low: 399.99 USD available"
    assert WalletAlert.objects.get(wallet=support_wallet).state == "low"
    assert WalletAlert.objects.filter(wallet=theirs).count() == 2


def test_a_new_allocation_lets_the_wallet_alert_again(support, support_wallet, spend):
    spend(department=support, amount="4600")
    assert _states() == [("low", "sent")]
    wallet_services.wallet_allocate(department=support, amount=Decimal("1000"), currency="USD")
    spend(department=support, amount="1")  # 1,399 of a 1,000 allocation: healthy
    spend(department=support, amount="1300")  # 99 < 100
    assert _states() == [("low", "sent"), ("low", "sent")]
    # Without a budget the department's own owner emails hear about it.
    assert mail.outbox[-1].to == ["lead@support.example"]


def test_with_enforcement_off_a_hold_beyond_available_succeeds_and_alerts_fire(
    budget, support, spend
):
    org = support.organization
    org.wallet_enforcement = False
    org.save()

    spend(department=support, amount="5200")  # 200 more than the wallet holds
    support.refresh_from_db()
    wallet = wallet_services.wallet_for_team(department=support)
    assert wallet.balance == Decimal("-200")
    assert _states() == [("depleted", "sent")]
    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == [50, 80, 100]
    assert "enforcement is off" in next(m for m in mail.outbox if "Wallet" in m.subject).body


def test_with_enforcement_on_a_hold_beyond_available_is_refused_and_alerts_still_fire(
    budget, support, spend
):
    spend(department=support, amount="4950")
    with pytest.raises(InsufficientFunds):
        record_spend(department=support, amount="51")
    assert not Hold.objects.filter(amount=Decimal("51")).exists()
    wallet = wallet_services.wallet_for_team(department=support)
    assert wallet.balance == Decimal("50")
    assert _states() == [("low", "sent")]
    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == [50, 80, 100]


def test_the_hourly_run_catches_a_wallet_change_the_hook_missed(
    support, support_wallet, run_hourly
):
    # Spend recorded without the hook running (e.g. the process died right after the commit).
    record_spend(department=support, amount="4999")
    assert _states() == []
    run_hourly()
    run_hourly()
    assert _states() == [("low", "sent")]
    assert len(mail.outbox) == 1
