"""The served OpenAPI schema (`/api/schema/`) is valid and says what the management API really
answers: lists as pages, and the shared error bodies of 400, 401, 404 and 409; every list
refuses an unreadable `limit` or `offset` the same way (chargeback/openapi.py,
chargeback/pagination.py)."""

import copy
from datetime import date
from decimal import Decimal

import jsonschema
import pytest
from django.utils import timezone
from drf_spectacular.validation import validate_schema

from alert_channels.models import AlertChannel
from alert_channels.services.channels import channel_create
from budgets.models import Budget
from budgets.services import budget_create
from chargeback.models import Department, ProviderSecret
from chargeback.provider_secrets import provider_secret_set
from gateway.exchange import exchange_rate_create
from gateway.models import ExchangeRate
from reports.models import ExportJob
from tests.conftest import bearer_client
from tests.factories import DepartmentFactory
from wallets import services
from wallets.models import Hold, LedgerEntry, Wallet
from wallets.models_tickets import CostTicket
from wallets.tickets.services import ticket_open

pytestmark = pytest.mark.django_db

# Known today; the tests find the lists in the schema itself, so a new list is covered too.
KNOWN_LISTS = {
    "/v1/wallets",
    "/v1/wallets/{team_id}/ledger",
    "/v1/wallets/{team_id}/transactions",
    "/v1/budgets",
    "/v1/export-jobs",
    "/v1/webhooks",
    "/v1/cost-tickets",
}
CONFLICTS = {
    ("post", "/v1/wallets/allocate"),
    ("post", "/v1/wallets/credit"),
    ("post", "/v1/wallets/reclaim"),
    ("post", "/v1/budgets"),
    ("post", "/v1/webhooks"),
    ("get", "/v1/export-jobs/{job_id}/download"),
}
# A public https address, as the upstream rules want (nothing is sent to it here).
WEBHOOK_URL = "https://93.184.215.14/kt-hook"
METHODS = ("get", "post", "put", "patch", "delete")


# --- the schema as JSON Schema ----------------------------------------------------------------


def _nullable_to_json_schema(node):
    """OpenAPI 3.0's `nullable: true` is `null` allowed, in JSON Schema terms."""
    if isinstance(node, list):
        return [_nullable_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable_to_json_schema(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


class Documented:
    def __init__(self, schema: dict):
        self.schema = schema
        self.components = _nullable_to_json_schema(schema["components"])

    def operations(self):
        for path, item in self.schema["paths"].items():
            for method in METHODS:
                if method in item and path.startswith("/v1/"):
                    yield method, path, item[method]

    def response(self, method: str, path: str, status: int) -> dict | None:
        responses = self.schema["paths"][path][method]["responses"]
        body = responses.get(str(status), {}).get("content", {}).get("application/json")
        return _nullable_to_json_schema(body["schema"]) if body else None

    def resolve(self, node: dict) -> dict:
        while "$ref" in node:
            node = self.components["schemas"][node["$ref"].rsplit("/", 1)[1]]
        return node

    def lists(self) -> set[str]:
        """GET operations whose 200 is a page: `{count, next, previous, results: [...]}`."""
        found = set()
        for method, path, _ in self.operations():
            body = self.response(method, path, 200) if method == "get" else None
            if body and "results" in self.resolve(body).get("properties", {}):
                found.add(path)
        return found

    def check(self, body, method: str, path: str, status: int) -> None:
        schema = self.response(method, path, status)
        assert schema is not None, f"{method.upper()} {path}: {status} is not documented"
        jsonschema.Draft4Validator({"allOf": [schema], "components": self.components}).validate(
            body
        )


@pytest.fixture
def documented(api):
    response = api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)  # OpenAPI 3.0's own JSON Schema
    return Documented(schema)


# --- data: one of everything a list shows, for us and for an outsider -------------------------


def _tenant(org, team_id: str, *, jobs: int) -> dict:
    """Two or more rows in every list (so that `offset=1` still shows one)."""
    department = Department.objects.filter(organization=org, team_id=team_id).first()
    department = department or DepartmentFactory(organization=org, team_id=team_id)
    for amount in ("100.00", "25.50"):
        services.wallet_allocate(department=department, amount=Decimal(amount), currency="USD")
    services.wallet_credit(organization=org, amount=Decimal("10"), currency="USD")
    # A released hold: a reservation and a release among the team's transactions.
    team = services.wallet_for_team(department=department)
    services.hold_release(
        hold=services.hold_place(wallet=team, amount=Decimal("1"), request_id=f"req_{team_id}")
    )
    budget = budget_create(organization=org, team_id=team_id, amount=Decimal("500"))
    budget_create(organization=org, team_id=team_id, amount=Decimal("1500"), period="quarter")
    for _ in range(jobs):
        job = ExportJob.objects.create(
            organization=org,
            type=ExportJob.Type.EVENTS,
            format=ExportJob.Format.CSV,
            date_from=date(2026, 5, 1),
            date_to=date(2026, 5, 31),
            requested_by="test",
        )
    for name in (f"{team_id}-key", f"{team_id}-key-2"):
        provider_secret_set(
            organization=org, name=name, value="sk-0123456789abcdef", actor="t", via="api"
        )
    for suffix in ("hook", "hook-2"):
        channel, _ = channel_create(
            organization=org, name=f"{team_id}-{suffix}", kind="webhook", url=WEBHOOK_URL
        )
    for currency in ("EUR", "GBP"):  # the organization's own exchange rates
        exchange_rate_create(
            organization=org,
            from_currency="USD",
            to_currency=currency,
            rate=Decimal("0.9"),
            effective_from=timezone.now(),
            actor="t",
            via="api",
        )
    for n in range(2):  # cost tickets (wallets/tickets): pending, on the team's wallet
        ticket = ticket_open(
            wallet=team,
            department_id=department.pk,
            consumer_group_id=None,
            user_ref="",
            model="m",
            estimate=Decimal("2"),
            request_id=f"req_{team_id}_t{n}",
        )
    return {
        "ticket_id": ticket.ticket_id,
        "team_id": team_id,
        "budget_id": budget.pk,
        "job_id": job.pk,
        "name": name,
        "webhook_id": channel.pk,
    }


def _rows(org, team_id: str) -> dict:
    """What each known list holds for `org`, counted in the database."""
    return {
        "/v1/wallets": Wallet.objects.filter(organization=org).count(),
        "/v1/wallets/{team_id}/ledger": LedgerEntry.objects.filter(
            wallet__department__organization=org, wallet__department__team_id=team_id
        ).count(),
        # The ledger's entries, each hold's reservation and each release.
        "/v1/wallets/{team_id}/transactions": LedgerEntry.objects.filter(
            wallet__department__organization=org, wallet__department__team_id=team_id
        ).count()
        + sum(
            1 + (hold.status in ("released", "expired"))
            for hold in Hold.objects.filter(organization=org, wallet__department__team_id=team_id)
        ),
        "/v1/budgets": Budget.objects.filter(organization=org).count(),
        "/v1/export-jobs": ExportJob.objects.filter(organization=org).count(),
        "/v1/provider-secrets": ProviderSecret.objects.filter(organization=org).count(),
        "/v1/webhooks": AlertChannel.objects.filter(organization=org).count(),
        "/v1/cost-tickets": CostTicket.objects.filter(organization=org).count(),
        "/v1/admin/exchange-rates": ExchangeRate.objects.filter(organization=org).count(),
    }


@pytest.fixture
def ours(org, engineering):
    return _tenant(org, "team_engineering", jobs=2)


@pytest.fixture
def theirs(outsider_org):
    """More rows than ours in every list: a page that counted them would show it."""
    _tenant(outsider_org, "team_outsider_only", jobs=3)
    return _tenant(outsider_org, "team_outsider_only_2", jobs=1)


def _url(path: str, values: dict) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", str(value))
    assert "{" not in path, f"no value for a parameter of {path}"
    return path


# --- the tests --------------------------------------------------------------------------------


def test_the_served_schema_is_valid_and_documents_every_list_as_a_page(documented):
    assert documented.lists() >= KNOWN_LISTS
    for method, path, _ in documented.operations():
        for status in ("200", "201"):
            body = documented.response(method, path, int(status))
            if body:
                assert documented.resolve(body).get("type") != "array", f"{path} is an array"


def test_each_lists_real_page_matches_its_documented_shape(documented, api, org, ours, theirs):
    rows = _rows(org, ours["team_id"])
    for path in documented.lists():
        url = _url(path, ours)
        for query in ({}, {"limit": 1}, {"limit": 1, "offset": 1}):
            response = api.get(url, query)
            assert response.status_code == 200, (path, query, response.content)
            page = response.json()
            documented.check(page, "get", path, 200)
            assert page["results"], f"{path}: nothing to check the rows against"
            assert len(page["results"]) <= query.get("limit", 500)
            # Only the token's organization: the outsider's rows are neither counted nor shown.
            if path in rows:
                assert page["count"] == rows[path], path
            assert "outsider" not in response.content.decode()


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("limit", "abc"),
        ("limit", "1.5"),
        ("limit", "0"),
        ("limit", "-3"),
        ("limit", ""),
        ("offset", "abc"),
        ("offset", "-1"),
    ],
)
def test_every_list_refuses_an_unreadable_limit_or_offset_with_a_400_naming_it(
    documented, api, ours, parameter, value
):
    for path in documented.lists():
        response = api.get(_url(path, ours), {parameter: value})
        assert response.status_code == 400, (path, response.content)
        body = response.json()
        assert list(body) == [parameter], (path, body)
        documented.check(body, "get", path, 400)


def test_a_limit_above_the_maximum_is_lowered_to_it(documented, api, ours):
    for path in documented.lists():
        page = api.get(_url(path, ours), {"limit": 100_000, "offset": 0}).json()
        assert len(page["results"]) == page["count"]  # fewer rows than the maximum here
        assert page["next"] is None


def test_every_operation_documents_401_and_answers_it_so(documented, client, ours):
    for method, path, _ in documented.operations():
        response = getattr(client, method)(_url(path, ours))
        assert response.status_code == 401, (method, path)
        documented.check(response.json(), method, path, 401)


def test_another_organizations_object_is_the_documented_404(documented, api, theirs):
    for method, path, _ in documented.operations():
        if "{" not in path:
            continue
        response = getattr(api, method)(_url(path, theirs), {}, format="json")
        assert response.status_code == 404, (method, path, response.content)
        documented.check(response.json(), method, path, 404)


def test_operations_that_take_input_document_400_and_conflicts_document_409(documented):
    for method, path, operation in documented.operations():
        takes_input = method in ("post", "put", "patch") or any(
            p["in"] == "query" for p in operation.get("parameters", [])
        )
        if takes_input:
            assert documented.response(method, path, 400), (method, path)
        if (method, path) in CONFLICTS:
            assert documented.response(method, path, 409), (method, path)


def test_real_400_404_and_409_bodies_match_the_documented_ones(
    documented, api, engineering, outsider_org, outsider_token
):
    bad_amount = api.post(
        "/v1/budgets", {"team_id": "team_engineering", "amount": "lots"}, format="json"
    )
    assert bad_amount.status_code == 400
    assert "amount" in bad_amount.json()
    documented.check(bad_amount.json(), "post", "/v1/budgets", 400)

    malformed = api.post("/v1/wallets/allocate", "{", content_type="application/json")
    assert malformed.status_code == 400
    assert "detail" in malformed.json()
    documented.check(malformed.json(), "post", "/v1/wallets/allocate", 400)

    bad_file = api.post("/v1/config/apply", "version: '1'\nnope: 1\n", content_type="text/yaml")
    assert bad_file.status_code == 400
    assert (bad_file.json()["code"], bad_file.json()["line"]) == ("invalid_config", 2)
    documented.check(bad_file.json(), "post", "/v1/config/apply", 400)

    DepartmentFactory(organization=outsider_org, team_id="team_outsider_only")
    theirs = {"team_id": "team_outsider_only", "amount": "500"}
    unknown = api.post("/v1/budgets", theirs, format="json")
    assert unknown.status_code == 404
    documented.check(unknown.json(), "post", "/v1/budgets", 404)

    body = {"team_id": "team_engineering", "amount": "500"}
    assert api.post("/v1/budgets", body, format="json").status_code == 201
    duplicate = api.post("/v1/budgets", body, format="json")
    assert duplicate.status_code == 409
    documented.check(duplicate.json(), "post", "/v1/budgets", 409)

    # The outsider's token sees its own (empty) lists, not ours.
    outsider = bearer_client(outsider_token).get("/v1/budgets")
    assert outsider.json()["count"] == 0


def test_the_schema_converter_understands_nullable():
    schema = _nullable_to_json_schema(
        {"type": "object", "properties": {"next": {"type": "string", "nullable": True}}}
    )
    jsonschema.validate({"next": None}, copy.deepcopy(schema))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"next": 3}, schema)
