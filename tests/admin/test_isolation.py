"""No screen of the admin shows one organization's rows to another's staff.

The cases are generated from `admin.site._registry`: a model admin added later is covered as
soon as it is registered (and the tenant builder in conftest gives its model a row).
"""

import pytest
from django.contrib import admin
from django.contrib.admin.filters import RelatedFieldListFilter
from django.urls import reverse

from chargeback.admin_base import OrgScopedAdmin, snapshot
from chargeback.models import AuditLog

APPS = {"chargeback", "wallets", "gateway", "alert_channels", "budgets", "reports", "sso"}
ROLES = ["finance", "budget_owner", "viewer"]
MODEL_ADMINS = sorted(
    (
        (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label in APPS
    ),
    key=lambda pair: pair[0]._meta.label,
)
CASES = [
    pytest.param(model, model_admin, role, id=f"{model._meta.label_lower}-{role}")
    for model, model_admin in MODEL_ADMINS
    for role in ROLES
]


def org_path(model_admin):
    return getattr(model_admin, "org_path", "organization")


def rows_of(model, model_admin, org):
    return model._default_manager.filter(**{org_path(model_admin): org.pk})


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def tenant_fingerprint(org):
    """Everything the outsider has, to prove that nothing of it changed."""
    return {
        model._meta.label: sorted(
            (snapshot(obj) for obj in rows_of(model, model_admin, org)), key=lambda d: str(d)
        )
        for model, model_admin in MODEL_ADMINS
    }


def test_every_model_of_the_project_has_an_org_scoped_admin():
    registered = {model._meta.label for model, _ in MODEL_ADMINS}
    for label in [
        "chargeback.Organization",
        "chargeback.Department",
        "chargeback.ConsumerGroup",
        "chargeback.ProviderTarget",
        "chargeback.AdminToken",
        "chargeback.Membership",
        "chargeback.AuditLog",
        "wallets.Wallet",
        "wallets.LedgerEntry",
        "wallets.Hold",
        "budgets.Budget",
        "budgets.BudgetAlert",
        "budgets.WalletAlert",
        "gateway.Price",
        "gateway.UsageEvent",
        "reports.ProviderInvoice",
        "sso.SsoConnection",
        "sso.SsoIdentity",
    ]:
        assert label in registered
    for model, model_admin in MODEL_ADMINS:
        assert isinstance(model_admin, OrgScopedAdmin), model._meta.label


@pytest.mark.parametrize(("model", "model_admin", "role"), CASES)
def test_staff_never_see_a_row_of_another_organization(
    model, model_admin, role, acme, outsider, login
):
    client = login(acme.users[role])
    foreign = list(rows_of(model, model_admin, outsider.org).values_list("pk", flat=True))
    own = list(rows_of(model, model_admin, acme.org).values_list("pk", flat=True))
    assert foreign, f"conftest.build_tenant must create a {model._meta.label} row"
    assert own

    response = client.get(url(model, "changelist"))
    if role == "budget_owner" and response.status_code == 403:
        assert not model_admin.has_view_permission(response.wsgi_request)
    else:
        assert response.status_code == 200
        assert b"outsider" not in response.content.lower()
        shown = {obj.pk for obj in response.context["cl"].result_list}
        assert not shown & set(foreign)
        if role != "budget_owner":
            assert shown, "the changelist shows the organization's own rows"
        # Filter choices: related ones must be rows the user may see.
        for spec in response.context["cl"].filter_specs:
            if isinstance(spec, RelatedFieldListFilter):
                related = spec.field.related_model
                offered = [value for value, _label in spec.lookup_choices]
                assert not rows_of(related, admin.site._registry[related], outsider.org).filter(
                    pk__in=offered
                )

    # The organization's own change page and the add page offer no foreign choices either.
    for page in (url(model, "change", own[0]), url(model, "add")):
        response = client.get(page)
        assert response.status_code in (200, 403, 404)
        if response.status_code == 200:
            assert b"outsider" not in response.content.lower(), page

    # A foreign row is a 404 before any permission check, so one role tries every door and
    # the others the main one (the machine is shared: keep the request count down).
    first = foreign[0]
    assert client.get(url(model, "change", first)).status_code == 404
    if role == "finance":
        for pk in foreign[1:]:
            assert client.get(url(model, "change", pk)).status_code == 404, pk
        for view in ("delete", "history"):
            assert client.get(url(model, view, first)).status_code == 404, view
        for view in ("change", "delete"):
            assert client.post(url(model, view, first), {"post": "yes"}).status_code == 404


@pytest.mark.parametrize(("model", "model_admin", "role"), CASES)
def test_actions_never_touch_a_row_of_another_organization(
    model, model_admin, role, acme, outsider, login
):
    client = login(acme.users[role])
    response = client.get(url(model, "changelist"))
    if response.status_code != 200 or not response.context.get("action_form"):
        return  # no changelist or no actions for this role: nothing to try
    actions = [name for name, _ in response.context["action_form"].fields["action"].choices if name]
    foreign = [
        str(pk) for pk in rows_of(model, model_admin, outsider.org).values_list("pk", flat=True)
    ]
    before = tenant_fingerprint(outsider.org)
    audit_before = AuditLog.objects.filter(organization=outsider.org).count()
    for action in actions:
        for extra in (
            {},
            {"apply": "1", "amount": "1", "reason": "x", "token": "t", "post": "yes"},
        ):
            response = client.post(
                url(model, "changelist"),
                {"action": action, "_selected_action": foreign, "index": 0, **extra},
            )
            assert response.status_code in (200, 302)
            assert b"outsider" not in response.content.lower()
    assert tenant_fingerprint(outsider.org) == before
    assert AuditLog.objects.filter(organization=outsider.org).count() == audit_before


def test_autocomplete_offers_only_rows_of_the_organization(acme, outsider, login):
    checked = 0
    for role in ROLES:
        client = login(acme.users[role])
        for model, model_admin in MODEL_ADMINS:
            for field_name in model_admin.autocomplete_fields:
                remote = model._meta.get_field(field_name).related_model
                response = client.get(
                    reverse("admin:autocomplete"),
                    {
                        "app_label": model._meta.app_label,
                        "model_name": model._meta.model_name,
                        "field_name": field_name,
                        "term": "",
                    },
                )
                if response.status_code == 403:
                    continue
                assert response.status_code == 200
                ids = {int(r["id"]) for r in response.json()["results"]}
                foreign = set(
                    rows_of(remote, admin.site._registry[remote], outsider.org).values_list(
                        "pk", flat=True
                    )
                )
                assert ids
                assert not ids & foreign
                checked += 1
    assert checked >= 2


def test_budget_owners_see_only_their_departments(acme, outsider, login):
    client = login(acme.users["budget_owner"])
    response = client.get(reverse("admin:chargeback_department_changelist"))
    assert [d.pk for d in response.context["cl"].result_list] == [acme.owned.pk]
    response = client.get(reverse("admin:gateway_usageevent_changelist"))
    assert {e.department_id for e in response.context["cl"].result_list} == {acme.owned.pk}
    assert (
        client.get(reverse("admin:chargeback_department_change", args=[acme.other.pk])).status_code
        == 404
    )


def test_a_superuser_sees_every_organization(acme, outsider, superuser, login):
    client = login(superuser)
    response = client.get(reverse("admin:chargeback_department_changelist"))
    orgs = {d.organization_id for d in response.context["cl"].result_list}
    assert orgs == {acme.org.pk, outsider.org.pk}


def test_staff_without_membership_see_nothing(acme, outsider, login, django_user_model):
    stray = django_user_model.objects.create_user(username="stray", password="x", is_staff=True)
    client = login(stray)
    assert client.get(reverse("admin:chargeback_department_changelist")).status_code == 403
    index = client.get(reverse("admin:index"))
    assert b"Departments" not in index.content


@pytest.mark.parametrize("role", ["owner", "finance"])
def test_form_choices_of_every_admin_are_rows_of_the_organization(role, acme, outsider, rf):
    checked = 0
    for model, model_admin in MODEL_ADMINS:
        request = rf.get("/")
        request.user = acme.users[role]
        form_class = model_admin.get_form(request, obj=None)
        for name, form_field in form_class.base_fields.items():
            queryset = getattr(form_field, "queryset", None)
            if queryset is None:
                continue
            related = queryset.model
            related_admin = admin.site._registry.get(related)
            if related_admin is None:
                assert not queryset.exclude(membership__organization=acme.org).exists(), name
            else:
                foreign = rows_of(related, related_admin, outsider.org)
                assert not queryset.filter(pk__in=foreign.values("pk")).exists(), (model, name)
            checked += 1
    assert checked >= 3
