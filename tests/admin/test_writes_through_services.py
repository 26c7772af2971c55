"""Every admin that adds or changes rows does it through the service that the API, the CLI, the
config file and the tasks use: a bad form is refused by the service's own rule, in the same
words as the API (or the service) uses, and changes nothing; a good form leaves the service's
audit row, the one the API writes for the same operation.

The cases are checked against `admin.site._registry`: an admin that can add or change and has
no case here fails the first test.
"""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pytest
from django import forms
from django.contrib import admin
from django.urls import reverse

from alert_channels.models import AlertChannel
from alert_channels.services.channels import channel_create, channel_update
from budgets.models import Budget
from chargeback import services as tenancy
from chargeback.errors import ApplicationError
from chargeback.models import (
    AuditLog,
    ConsumerGroup,
    Department,
    Membership,
    Organization,
    ProviderSecret,
    ProviderTarget,
)
from chargeback.provider_secrets import provider_secret_set
from chargeback.targets import target_upsert
from gateway import prices
from gateway.exchange import exchange_rate_create
from gateway.models import Price, ResponseCachePolicy
from gateway.response_cache.services import cache_policy_set
from reports.invoices import provider_invoice_save
from reports.models import ProviderInvoice
from tests.conftest import bearer_client
from wallets import services as wallet_services
from wallets.models import Wallet
from wallets.tickets.policy import ticket_policy_set

# Django's own user and group admins and django-axes' login records (lockouts) are the platform
# operator's (superusers only); nothing of a tenant is written there.
PLATFORM_ADMINS = {
    "auth.user",
    "auth.group",
    "axes.accessattempt",
    "axes.accessfailurelog",
    "axes.accesslog",
}


def form_data(form) -> dict:
    """What a browser would post for `form` as it is shown."""
    data = {}
    for name, form_field in form.fields.items():
        value = form[name].value()
        widget = form_field.widget
        if isinstance(widget, forms.MultiWidget):
            for index, part in enumerate(widget.decompress(value)):
                data[f"{name}_{index}"] = "" if part is None else str(part)
        elif isinstance(form_field, forms.BooleanField):
            if value:
                data[name] = "on"
        elif isinstance(form_field, forms.ModelMultipleChoiceField):
            data[name] = [str(v) for v in value or []]
        elif isinstance(value, list | tuple):
            data[name] = [str(v) for v in value]
        else:
            data[name] = "" if value is None else str(value)
    return data


def errors_of(response) -> dict:
    assert response.status_code == 200, "the form was accepted"
    form = response.context["adminform"].form
    return {name: list(problems) for name, problems in form.errors.items()}


def refusal(call) -> dict:
    """The {field: [messages]} a service (or an API response) gives for bad input."""
    try:
        result = call()
    except ApplicationError as exc:
        return exc.field_errors()
    if hasattr(result, "status_code"):
        assert 400 <= result.status_code < 500, result.content
        body = result.json()
        if "detail" in body and body.get("field"):  # one refusal naming its field
            return {body["field"]: [body["detail"]]}
        return body
    raise AssertionError("the service accepted it")


@dataclass
class Case:
    who: str  # a role of the tenant, or "superuser"
    url: object  # tenant -> admin URL
    bad: list  # [(form changes, tenant -> the API's or service's refusal of the same input)]
    good: dict  # form changes accepted
    action: str  # the audit action the admin must leave
    same_elsewhere: object = None  # tenant -> the action another interface writes for it
    extra: dict = field(default_factory=dict)


def _budget_api(tenant, **body):
    team = tenant.third.team_id
    payload = {"team_id": team, "amount": "100", "currency": "USD", **body}
    return bearer_client(tenant.token).post("/v1/budgets", payload, format="json")


def _action_of_budget_api(tenant) -> str:
    _budget_api(tenant, amount="42")
    return AuditLog.objects.filter(organization=tenant.org).latest("id").action


def _budget_patch(tenant, **body):
    budget = tenant.owned.budgets.get()
    return bearer_client(tenant.token).patch(f"/v1/budgets/{budget.pk}", body, format="json")


def _action_of_budget_patch(tenant) -> str:
    _budget_patch(tenant, amount="43")
    return AuditLog.objects.filter(organization=tenant.org).latest("id").action


def _export_api(tenant, **body):
    payload = {"type": "events", "format": "csv", "date_from": "2026-05-01", **body}
    payload.setdefault("date_to", "2026-05-31")
    return bearer_client(tenant.token).post("/v1/export-jobs", payload, format="json")


def _action_of_export_api(tenant) -> str:
    _export_api(tenant)
    return AuditLog.objects.filter(organization=tenant.org).latest("id").action


def _action_of_config_department(tenant) -> str:
    tenancy.department_get_or_create(
        organization=tenant.org, team_id="team_from_config", actor="cfg", via="config"
    )
    return AuditLog.objects.filter(organization=tenant.org).latest("id").action


def _action_of_config_cost_tracking(tenant) -> str:
    tenancy.organization_cost_tracking_set(
        organization=tenant.org, enabled=True, wallet_enforcement=False, actor="cfg", via="config"
    )
    return AuditLog.objects.filter(organization=tenant.org).latest("id").action


def _action_of_config_group(tenant) -> str:
    from chargeback.services import consumer_group_upsert

    consumer_group_upsert(
        organization=tenant.org,
        name=tenant.group.name,
        raw_key=None,
        department=tenant.group.department,
        rpm_limit=700,
        actor="cfg",
        via="config",
    )
    return AuditLog.objects.filter(organization=tenant.org).latest("id").action


def _sso_save(tenant, *, secret_name=None, **changes):
    from sso.connections import sso_connection_save

    sso = tenant.sso
    fields = {
        "issuer": sso.issuer,
        "client_id": sso.client_id,
        "client_secret_name": sso.client_secret.name if secret_name is None else secret_name,
        "department_map": sso.department_map,
        **changes,
    }
    return sso_connection_save(organization=tenant.org, actor="x", via="x", **fields)


def _cache_set(tenant, group=None, **values):
    return lambda: cache_policy_set(
        organization=tenant.org, consumer_group=group, actor="x", via="x", **values
    )


def _action_of_config_cache(tenant) -> str:
    cache_policy_set(organization=tenant.org, enabled=False, actor="cfg", via="config")
    return AuditLog.objects.filter(organization=tenant.org).latest("id").action


def _channel_api(tenant, **body):
    payload = {"name": "from-api", "url": "https://93.184.215.14/kt", **body}
    return bearer_client(tenant.token).post("/v1/webhooks", payload, format="json")


def _action_of_channel_api(tenant) -> str:
    _channel_api(tenant)
    return AuditLog.objects.filter(organization=tenant.org).latest("id").action


def _action_of_rate_api(tenant) -> str:
    body = {"from_currency": "USD", "to_currency": "CHF", "rate": "0.88"}
    response = bearer_client(tenant.token).post("/v1/admin/exchange-rates", body, format="json")
    assert response.status_code == 201, response.content
    return AuditLog.objects.filter(organization=tenant.org).latest("id").action


def _url(name, *args):
    return lambda tenant: reverse(f"admin:{name}", args=[a(tenant) for a in args])


CASES = {
    "budgets.budget (add)": Case(
        who="finance",
        url=_url("budgets_budget_add"),
        bad=[
            ({"amount": "-5.00"}, lambda t: _budget_api(t, amount="-5.00")),
            ({"currency": "EUR"}, lambda t: _budget_api(t, currency="EUR")),
            ({"thresholds": "[100, 50, 50]"}, lambda t: _budget_api(t, thresholds=[100, 50, 50])),
            (
                {"owner_emails": '["not-an-email"]'},
                lambda t: _budget_api(t, owner_emails=["not-an-email"]),
            ),
        ],
        good={"amount": "100", "thresholds": "[50, 100]", "owner_emails": '["a@b.example"]'},
        action="budget.create",
        same_elsewhere=_action_of_budget_api,
        extra={
            "department": lambda t: str(t.third.pk),
            "amount": "100",
            "period": "month",
            "currency": "USD",
            "thresholds": "[50, 80, 100]",
            "owner_emails": "[]",
        },
    ),
    "budgets.budget (change)": Case(
        who="finance",
        url=_url("budgets_budget_change", lambda t: t.owned.budgets.get().pk),
        bad=[
            ({"amount": "0"}, lambda t: _budget_patch(t, amount="0")),
            ({"thresholds": "[80, 50]"}, lambda t: _budget_patch(t, thresholds=[80, 50])),
            ({"owner_emails": '["lead"]'}, lambda t: _budget_patch(t, owner_emails=["lead"])),
        ],
        good={"amount": "750.00"},
        action="budget.update",
        same_elsewhere=_action_of_budget_patch,
    ),
    "alert_channels.alertchannel (add)": Case(
        who="owner",
        url=_url("alert_channels_alertchannel_add"),
        bad=[
            (
                {"url": "https://169.254.169.254/latest"},
                lambda t: _channel_api(t, url="https://169.254.169.254/latest"),
            ),
            (
                {"budget_period": "month"},
                lambda t: (
                    lambda: channel_create(
                        organization=t.org,
                        name="z",
                        kind="webhook",
                        url="https://93.184.215.14/kt",
                        budget_period="month",
                    )
                ),
            ),
        ],
        good={},
        action="alert_channel.create",
        same_elsewhere=_action_of_channel_api,
        extra={
            "organization": lambda t: str(t.org.pk),
            "name": "new-hook",
            "kind": "webhook",
            "url": "https://93.184.215.14/kt",
            "events": "[]",
            "is_active": "on",
        },
    ),
    "alert_channels.alertchannel (change)": Case(
        who="owner",
        url=_url("alert_channels_alertchannel_change", lambda t: t.channel.pk),
        bad=[
            (
                {"events": '["budget.exploded"]'},
                lambda t: lambda: channel_update(channel=t.channel, events=["budget.exploded"]),
            ),
        ],
        good={"is_active": ""},
        action="alert_channel.update",
    ),
    "chargeback.department (add)": Case(
        who="owner",
        url=_url("chargeback_department_add"),
        bad=[
            (
                {"team_id": "team_acme_eng"},
                lambda t: (
                    lambda: tenancy.department_create(
                        organization=t.org, team_id="team_acme_eng", actor="x", via="api"
                    )
                ),
            ),
            (
                {"owner_emails": '["nobody"]'},
                lambda t: (
                    lambda: tenancy.department_create(
                        organization=t.org,
                        team_id="team_z",
                        owner_emails=["nobody"],
                        actor="x",
                        via="x",
                    )
                ),
            ),
        ],
        good={"team_id": "team_new", "name": "New"},
        action="department.create",
        same_elsewhere=_action_of_config_department,
        extra={
            "organization": lambda t: str(t.org.pk),
            "team_id": "team_x",
            "owner_emails": "[]",
            "name": "X",
        },
    ),
    "chargeback.department (change)": Case(
        who="owner",
        url=_url("chargeback_department_change", lambda t: t.other.pk),
        bad=[
            (
                {"owner_emails": '["x@"]'},
                lambda t: (
                    lambda: tenancy.department_update(
                        department=t.other, owner_emails=["x@"], actor="x", via="x"
                    )
                ),
            )
        ],
        good={"name": "Operations"},
        action="department.update",
    ),
    "chargeback.organization (change)": Case(
        who="owner",
        url=_url("chargeback_organization_change", lambda t: t.org.pk),
        bad=[
            (
                {"currency": "XYZ"},
                lambda t: (
                    lambda: tenancy.organization_update(
                        organization=t.org, currency="XYZ", actor="x", via="x"
                    )
                ),
            ),
            (
                {"finance_emails": '["finance"]'},
                lambda t: (
                    lambda: tenancy.organization_update(
                        organization=t.org, finance_emails=["finance"], actor="x", via="x"
                    )
                ),
            ),
        ],
        good={"wallet_enforcement": ""},
        action="organization.update",
        same_elsewhere=_action_of_config_cost_tracking,
    ),
    "chargeback.admintoken (change)": Case(
        who="owner",
        url=_url("chargeback_admintoken_change", lambda t: t.org.admin_tokens.get().pk),
        # A name is the only free text; the form itself requires it, before the service would.
        bad=[({"name": ""}, None)],
        good={"is_active": ""},
        action="admin_token.update",
    ),
    "chargeback.membership (add)": Case(
        who="superuser",
        url=_url("chargeback_membership_add"),
        bad=[
            (
                {"user": lambda t: str(t.outsider_user.pk)},
                lambda t: (
                    lambda: tenancy.membership_save(
                        organization=t.org, user=t.outsider_user, role="viewer", actor="x", via="x"
                    )
                ),
            )
        ],
        good={"user": lambda t: str(t.newcomer.pk)},
        action="membership.create",
        extra={"organization": lambda t: str(t.org.pk), "role": "viewer"},
    ),
    "chargeback.membership (change)": Case(
        who="owner",
        url=_url("chargeback_membership_change", lambda t: t.users["viewer"].membership.pk),
        # Role and departments are choices the form itself restricts (another organization's
        # departments are not even offered), before the service would.
        bad=[
            ({"role": "emperor"}, None),
            ({"departments": lambda t: [str(t.outsider_department.pk)]}, None),
        ],
        good={"role": "finance"},
        action="membership.update",
    ),
    "chargeback.consumergroup (change)": Case(
        who="owner",
        url=_url("chargeback_consumergroup_change", lambda t: t.group.pk),
        bad=[
            (
                {"department": lambda t: str(t.outsider_department.pk)},
                None,  # another organization's department is not even a choice of the form
            )
        ],
        good={"rpm_limit": "600"},
        action="consumer_group.update",
        same_elsewhere=lambda t: _action_of_config_group(t),
    ),
    "chargeback.providertarget (add)": Case(
        who="owner",
        url=_url("chargeback_providertarget_add"),
        bad=[
            (
                {"base_url": "http://169.254.169.254/v1"},
                lambda t: (
                    lambda: target_upsert(
                        organization=t.org,
                        target_id="t2",
                        provider="openai",
                        base_url="http://169.254.169.254/v1",
                        actor="x",
                        via="x",
                    )
                ),
            ),
            (
                {"secret_env": "SECRET_KEY", "secret": ""},
                lambda t: (
                    lambda: target_upsert(
                        organization=t.org,
                        target_id="t2",
                        provider="openai",
                        secret_env="SECRET_KEY",
                        actor="x",
                        via="x",
                    )
                ),
            ),
        ],
        good={},
        action="target.create",
        extra={
            "organization": lambda t: str(t.org.pk),
            "target_id": "openai-eu",
            "provider": "openai",
            "secret": lambda t: str(t.secret.pk),
            "served_models": "[]",
            "options": "{}",
        },
    ),
    "chargeback.providertarget (change)": Case(
        who="owner",
        url=_url("chargeback_providertarget_change", lambda t: t.target.pk),
        bad=[
            (
                {"base_url": "http://127.0.0.1:5432"},
                lambda t: (
                    lambda: target_upsert(
                        organization=t.org,
                        target_id=t.target.target_id,
                        provider=t.target.provider,
                        base_url="http://127.0.0.1:5432",
                        secret_name=t.secret.name,
                        actor="x",
                        via="x",
                    )
                ),
            )
        ],
        good={"served_models": '["fake-chat"]'},
        action="target.update",
    ),
    "chargeback.providersecret (add)": Case(
        who="owner",
        url=_url("chargeback_providersecret_add"),
        bad=[
            (
                {"value": "sk with spaces"},
                lambda t: (
                    lambda: provider_secret_set(
                        organization=t.org,
                        name="n",
                        value="sk with spaces",
                        actor="x",
                        via="x",
                    )
                ),
            )
        ],
        good={},
        action="provider_secret.create",
        extra={
            "organization": lambda t: str(t.org.pk),
            "name": "anthropic-prod",
            "value": "sk-ant-0123456789abcdef",
        },
    ),
    "sso.ssoconnection (change)": Case(
        who="owner",
        url=_url("sso_ssoconnection_change", lambda t: t.sso.pk),
        bad=[
            (
                {"issuer": "http://169.254.169.254/latest"},
                lambda t: lambda: _sso_save(t, issuer="http://169.254.169.254/latest"),
            ),
            (
                {"role_map": '{"kt-staff": "emperor"}'},
                lambda t: lambda: _sso_save(t, role_map={"kt-staff": "emperor"}),
            ),
            (
                {"department_map": '{"leads": ["team_nowhere"]}'},
                lambda t: lambda: _sso_save(t, department_map={"leads": ["team_nowhere"]}),
            ),
            (
                {"client_secret": "", "client_secret_env": "SECRET_KEY"},
                lambda t: lambda: _sso_save(t, secret_name="", client_secret_env="SECRET_KEY"),
            ),
        ],
        good={"display_name": "Acme Okta", "role_map": '{"kt-finance": "finance"}'},
        action="sso_connection.update",
    ),
    "wallets.wallet (change)": Case(
        who="finance",
        url=_url("wallets_wallet_change", lambda t: t.owned.wallets.get().pk),
        bad=[
            (
                {"low_threshold_percent": "150"},
                lambda t: (
                    lambda: wallet_services.wallet_update(
                        wallet=t.owned.wallets.get(), low_threshold_percent=150, actor="x", via="x"
                    )
                ),
            )
        ],
        good={"low_threshold_percent": "25"},
        action="wallet.update",
    ),
    "gateway.price (add)": Case(
        who="finance",
        url=_url("gateway_price_add"),
        bad=[
            (
                {"input_per_mtok": "-1"},
                lambda t: (
                    lambda: prices.price_create(
                        organization=t.org,
                        provider="fake",
                        model="m",
                        input_per_mtok=Decimal(-1),
                        output_per_mtok=Decimal(0),
                        actor="x",
                        via="x",
                    )
                ),
            ),
            (
                {"currency": "ABC"},
                lambda t: (
                    lambda: prices.price_create(
                        organization=t.org,
                        provider="fake",
                        model="m",
                        input_per_mtok=Decimal(1),
                        output_per_mtok=Decimal(0),
                        currency="ABC",
                        actor="x",
                        via="x",
                    )
                ),
            ),
        ],
        good={"model": "brand-new"},
        action="price.create",
        extra={
            "organization": lambda t: str(t.org.pk),
            "provider": "fake",
            "model": "m",
            "kind": "chat",
            "input_per_mtok": "1",
            "output_per_mtok": "2",
            "max_output_tokens": "4096",
            "context_window": "128000",
            "currency": "USD",
            "effective_from_0": "2026-05-01",
            "effective_from_1": "00:00:00",
        },
    ),
    "gateway.exchangerate (add)": Case(
        who="finance",
        url=_url("gateway_exchangerate_add"),
        bad=[
            (
                {"rate": "0"},
                lambda t: (
                    lambda: exchange_rate_create(
                        organization=t.org,
                        from_currency="USD",
                        to_currency="GBP",
                        rate=Decimal(0),
                        actor="x",
                        via="x",
                    )
                ),
            ),
            (
                {"to_currency": "USD"},
                lambda t: (
                    lambda: exchange_rate_create(
                        organization=t.org,
                        from_currency="USD",
                        to_currency="USD",
                        rate=Decimal(1),
                        actor="x",
                        via="x",
                    )
                ),
            ),
        ],
        good={"rate": "0.79"},
        action="exchange_rate.create",
        same_elsewhere=_action_of_rate_api,
        extra={
            "organization": lambda t: str(t.org.pk),
            "from_currency": "USD",
            "to_currency": "GBP",
            "rate": "0.8",
            "effective_from_0": "2026-05-01",
            "effective_from_1": "00:00:00",
        },
    ),
    "gateway.price (change)": Case(
        who="finance",
        url=_url("gateway_price_change", lambda t: t.price.pk),
        bad=[
            (
                {"max_output_tokens": "0"},
                lambda t: (
                    lambda: prices.price_update(
                        price=t.price, max_output_tokens=0, actor="x", via="x"
                    )
                ),
            )
        ],
        good={"input_per_mtok": "9"},
        action="price.update",
    ),
    "gateway.responsecachepolicy (add)": Case(
        who="owner",
        url=_url("gateway_responsecachepolicy_add"),
        bad=[
            ({"ttl_seconds": "0"}, lambda t: _cache_set(t, t.free_group, ttl_seconds=0)),
            (
                {"hit_price": "0.01"},
                lambda t: _cache_set(t, t.free_group, hit_price=Decimal("0.01")),
            ),
            (
                {"consumer_group": "", "enabled": "true"},
                lambda t: (
                    lambda: cache_policy_set(
                        organization=t.org, enabled=True, new=True, actor="x", via="x"
                    )
                ),
            ),
        ],
        good={},
        action="cache_policy.set",
        same_elsewhere=_action_of_config_cache,
        extra={
            "organization": lambda t: str(t.org.pk),
            "consumer_group": lambda t: str(t.free_group.pk),
            "enabled": "true",
            "excluded_models": "[]",
        },
    ),
    "gateway.responsecachepolicy (change)": Case(
        who="owner",
        url=_url("gateway_responsecachepolicy_change", lambda t: t.cache_policy.pk),
        bad=[
            (
                {"max_entry_bytes": "10"},
                lambda t: _cache_set(t, enabled=True, max_entry_bytes=10),
            ),
            (
                {"hit_price": "-1"},
                lambda t: _cache_set(t, enabled=True, hit_price=Decimal("-1")),
            ),
        ],
        good={"ttl_seconds": "120"},
        action="cache_policy.set",
    ),
    "wallets.costticketpolicy (add)": Case(
        who="finance",
        url=_url("wallets_costticketpolicy_add"),
        bad=[
            (
                {"wait_seconds": "0"},
                lambda t: (
                    lambda: ticket_policy_set(
                        organization=t.org, mode="wait", wait_seconds=0, actor="x", via="x"
                    )
                ),
            ),
        ],
        good={},
        action="cost_ticket_policy.set",
        extra={
            "organization": lambda t: str(t.org.pk),
            "consumer_group": "",
            "mode": "wait",
            "wait_seconds": "30",
        },
    ),
    "reports.providerinvoice (add)": Case(
        who="finance",
        url=_url("reports_providerinvoice_add"),
        bad=[
            (
                {"currency": "XXX"},
                lambda t: (
                    lambda: provider_invoice_save(
                        organization=t.org,
                        provider="newcloud",
                        period=date(2026, 4, 1),
                        amount=Decimal(1),
                        currency="XXX",
                        actor="x",
                        via="x",
                    )
                ),
            ),
            (
                {"provider": "acmecloud", "period": "2026-05-01"},
                lambda t: (
                    lambda: provider_invoice_save(
                        organization=t.org,
                        provider="acmecloud",
                        period=date(2026, 5, 1),
                        amount=Decimal(1),
                        currency="USD",
                        actor="x",
                        via="x",
                    )
                ),
            ),
        ],
        good={},
        action="provider_invoice.create",
        extra={
            "organization": lambda t: str(t.org.pk),
            "provider": "newcloud",
            "period": "2026-04-01",
            "amount": "12.50",
            "currency": "USD",
        },
    ),
    "reports.exportjob (add)": Case(
        who="finance",
        url=_url("reports_exportjob_add"),
        bad=[
            (
                {"date_to": "2026-04-01"},
                lambda t: _export_api(t, date_to="2026-04-01"),
            )
        ],
        good={},
        action="export.requested",
        same_elsewhere=_action_of_export_api,
        extra={
            "type": "events",
            "format": "csv",
            "date_from": "2026-05-01",
            "date_to": "2026-05-31",
        },
    ),
}


def _resolve(values: dict, tenant) -> dict:
    return {k: v(tenant) if callable(v) else v for k, v in values.items()}


@pytest.fixture
def tenant(acme, outsider, superuser):
    """acme, plus what the cases need: a department without a budget, an admin token for the
    API, a price no event used, a user of the outsider and one who is nobody's staff."""
    from django.contrib.auth import get_user_model

    acme.third = Department.objects.create(
        organization=acme.org, team_id="team_acme_third", name="acme third"
    )
    acme.token = "kt_admin_acme_tok"
    acme.price = Price.objects.create(
        organization=acme.org,
        provider="fake",
        model="acme-unused",
        input_per_mtok=Decimal(1),
        effective_from="2026-01-01T00:00:00Z",
    )
    acme.outsider_user = outsider.users["viewer"]
    acme.outsider_department = outsider.owned
    acme.group = ConsumerGroup.objects.filter(organization=acme.org).order_by("pk").first()
    acme.target = ProviderTarget.objects.get(organization=acme.org)
    acme.secret = ProviderSecret.objects.get(organization=acme.org)
    acme.sso = acme.org.sso_connection
    acme.newcomer = get_user_model().objects.create_user(username="newcomer", password="x")
    acme.free_group = ConsumerGroup.objects.get(organization=acme.org, department=acme.other)
    acme.cache_policy = ResponseCachePolicy.objects.get(
        organization=acme.org, consumer_group__isnull=True
    )
    acme.channel = AlertChannel.objects.get(organization=acme.org)
    acme.users["superuser"] = superuser
    return acme


def test_every_admin_that_writes_has_a_case():
    writes = {
        model._meta.label_lower
        for model, model_admin in admin.site._registry.items()
        if model._meta.label_lower not in PLATFORM_ADMINS
        and not getattr(model_admin, "read_only", False)
    }
    covered = {name.split(" ")[0] for name in CASES}
    assert writes - covered == set()


def _page(client, case, tenant):
    url = case.url(tenant)
    page = client.get(url)
    assert page.status_code == 200, url
    data = form_data(page.context["adminform"].form)
    for inline in page.context["inline_admin_formsets"]:  # read-only inlines: post none
        prefix = inline.formset.prefix
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    data.update(_resolve(case.extra, tenant))
    return url, data


@pytest.mark.parametrize("name", CASES)
def test_a_bad_form_is_refused_by_the_services_rule_in_its_words(name, tenant, login):
    case = CASES[name]
    assert case.bad, "every admin that writes can be given a bad form"
    client = login(tenant.users[case.who])
    for changes, elsewhere in case.bad:
        url, data = _page(client, case, tenant)
        changes = _resolve(changes, tenant)
        audit_rows = AuditLog.objects.count()
        shown = errors_of(client.post(url, {**data, **changes}))
        assert AuditLog.objects.count() == audit_rows  # nothing written
        if elsewhere is None:
            assert shown  # refused by the form's own choices, before the service
            continue
        other = elsewhere(tenant)
        expected = refusal(other if callable(other) else (lambda other=other: other))
        for field_name, messages in expected.items():
            assert shown.get(field_name) == messages, (changes, shown, expected)


@pytest.mark.parametrize("name", CASES)
def test_a_good_form_leaves_the_services_audit_row(name, tenant, login):
    case = CASES[name]
    client = login(tenant.users[case.who])
    url, data = _page(client, case, tenant)
    before = AuditLog.objects.order_by("-id").first()
    response = client.post(url, {**data, **_resolve(case.good, tenant)})
    assert response.status_code == 302, errors_of(response)
    rows = AuditLog.objects.filter(id__gt=before.id if before else 0)
    assert [(r.action, r.via) for r in rows] == [(case.action, "admin")]
    if case.same_elsewhere is not None:
        assert case.same_elsewhere(tenant) == case.action


def test_the_issues_budget_example_is_refused_field_by_field(tenant, login):
    """The review's finance user: -5.00, EUR in a USD organization, [100, 50, 50], not-an-email."""
    client = login(tenant.users["finance"])
    budget = tenant.owned.budgets.get()
    url = reverse("admin:budgets_budget_change", args=[budget.pk])
    data = form_data(client.get(url).context["adminform"].form)
    shown = errors_of(
        client.post(
            url,
            {
                **data,
                "amount": "-5.00",
                "thresholds": "[100, 50, 50]",
                "owner_emails": '["not-an-email"]',
            },
        )
    )
    assert shown == {
        "amount": ["must be greater than zero"],
        "thresholds": ["thresholds must be in increasing order without repeats"],
        "owner_emails": ["'not-an-email' is not an email address"],
    }
    budget.refresh_from_db()
    assert budget.amount == Decimal("500")


def test_a_refused_delete_says_why_and_keeps_the_row(tenant, login):
    client = login(tenant.users["owner"])
    used = Price.objects.get(organization=tenant.org, model="acme-model")  # billed to events
    response = client.post(reverse("admin:gateway_price_delete", args=[used.pk]), {"post": "yes"})
    assert response.status_code == 200
    assert "<title>Cannot delete price" in response.content.decode()
    assert Price.objects.filter(pk=used.pk).exists()
    assert not AuditLog.objects.filter(action="price.delete").exists()


def test_other_organizations_rows_are_never_written(tenant, outsider, login):
    client = login(tenant.users["owner"])
    other_budget = outsider.owned.budgets.get()
    response = client.post(
        reverse("admin:budgets_budget_change", args=[other_budget.pk]), {"amount": "1"}
    )
    assert response.status_code == 404
    assert Budget.objects.get(pk=other_budget.pk).amount == Decimal("500")
    assert Organization.objects.get(pk=outsider.org.pk).name == outsider.org.name
    assert Wallet.objects.filter(organization=outsider.org).count() > 0
    assert Membership.objects.filter(organization=outsider.org).count() == 4
    assert ProviderInvoice.objects.filter(organization=outsider.org).count() == 1
