"""The gateway's side of issue 12 part 1, on the live server: a target's key is its
organization's stored secret or an allowed variable, sent in the right header; every new
upstream connection is checked on the address actually connected to (DNS rebinding); a refused
call is an OpenAI-shaped error that releases its hold and is recorded."""

from decimal import Decimal

import httpx
import pytest

from chargeback import upstream as address_rules
from chargeback.provider_secrets import provider_secret_set
from chargeback.services import target_upsert
from gateway.cache import clear_all
from gateway.models import UsageEvent
from tests.factories import PriceFactory
from tests.trust.listener import Listener
from wallets.models import Hold

from .conftest import KEY, allow_test_env_refs, live_db

pytestmark = live_db
SECRET = "sk-stored-0123456789abcdefghijklmnSTOR"
PUBLIC = "93.184.216.34"  # what the name "resolved to" when the file was applied


@pytest.fixture
def upstream():
    server = Listener()
    yield server
    server.close()


def chat(live_server, **body):
    return httpx.post(
        f"{live_server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], **body},
        timeout=30,
    )


def point(gw, *, base_url, secret_env="", secret=None, options=None):
    """The target as a row that was saved when it was allowed (before an upgrade, or before a
    name changed what it resolves to): the gateway must not rely on the save-time check."""
    gw.target.provider = "openai"
    gw.target.base_url = base_url
    gw.target.secret_env = secret_env
    gw.target.secret = secret
    gw.target.options = options or {}
    gw.target.save()
    PriceFactory(provider="openai", model="gpt-test")
    clear_all()


def assert_refused_and_recorded(gw, response, status, code):
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["code"] == code
    event = UsageEvent.objects.get()
    assert (event.status, event.http_status, event.error_code, event.cost) == (
        "provider_error" if status == 502 else event.status,
        status if status == 502 else event.http_status,
        code if status == 502 else event.error_code,
        Decimal("0"),
    )
    assert not Hold.objects.filter(status="pending").exists()
    assert gw.refresh().held == 0
    assert gw.wallet.balance == Decimal("10.00")


def test_a_stored_secret_reaches_the_upstream_as_a_bearer_token(
    gw, live_server, upstream, settings
):
    settings.KT_UPSTREAM_ALLOW_HOSTS = [
        *settings.KT_UPSTREAM_ALLOW_HOSTS,
        f"127.0.0.1:{upstream.port}",
    ]
    secret, _ = provider_secret_set(
        organization=gw.org, name="openai-prod", value=SECRET, actor="t", via="api"
    )
    point(gw, base_url=f"{upstream.url}/v1", secret=secret)

    response = chat(live_server)

    assert response.status_code == 200, response.text
    ((path, headers),) = upstream.seen.requests
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == f"Bearer {SECRET}"
    assert UsageEvent.objects.get().status == "ok"


def test_an_allowed_variable_reaches_an_azure_style_header(
    gw, live_server, upstream, settings, monkeypatch
):
    settings.KT_UPSTREAM_ALLOW_HOSTS = [f"127.0.0.1:{upstream.port}"]
    monkeypatch.setenv("KT_TEST_AZURE_KEY", "azure-0123456789abcdef")
    allow_test_env_refs(gw.org)
    point(
        gw,
        base_url=f"{upstream.url}/v1",
        secret_env="KT_TEST_AZURE_KEY",
        options={"auth_header": "api-key"},
    )

    assert chat(live_server).status_code == 200
    ((_, headers),) = upstream.seen.requests
    assert headers["api-key"] == "azure-0123456789abcdef"
    assert "Authorization" not in headers


def test_a_variable_the_operator_does_not_allow_is_never_read_nor_sent(
    gw, live_server, upstream, settings, monkeypatch
):
    """A target row that names another tenant's variable (saved before the allow-list existed)
    and the attacker's listener, which the operator even allows: the key never leaves."""
    settings.KT_UPSTREAM_ALLOW_HOSTS = [f"127.0.0.1:{upstream.port}"]
    monkeypatch.setenv("KT_VICTIM_OPENAI_KEY", "sk-victim-0123456789")
    point(gw, base_url=f"{upstream.url}/v1", secret_env="KT_VICTIM_OPENAI_KEY")

    response = chat(live_server)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_not_configured"
    assert "does not allow" in response.json()["error"]["message"]
    assert "sk-victim" not in response.text
    assert upstream.seen.connections == 0
    assert gw.refresh().held == 0


def test_a_stored_secret_without_the_key_to_open_it_is_a_clear_503(
    gw, live_server, upstream, settings
):
    settings.KT_UPSTREAM_ALLOW_HOSTS = [f"127.0.0.1:{upstream.port}"]
    secret, _ = provider_secret_set(
        organization=gw.org, name="openai-prod", value=SECRET, actor="t", via="api"
    )
    point(gw, base_url=f"{upstream.url}/v1", secret=secret)
    settings.KT_SECRETS_KEY = ""

    response = chat(live_server)

    assert response.status_code == 503
    assert "has no KT_SECRETS_KEY" in response.json()["error"]["message"]
    assert upstream.seen.connections == 0


def test_a_name_that_now_resolves_to_loopback_is_refused_at_connect_time(
    gw, live_server, upstream, settings, monkeypatch
):
    """DNS rebinding, by patching only the resolver function at the boundary
    (chargeback.upstream.resolve): no name this test controls can change its answer in real DNS.
    The name is applied while it "resolves" to a public address, then answers 127.0.0.1."""
    settings.KT_UPSTREAM_ALLOW_HTTP = True  # the listener speaks http; the address is the test
    answers = {"rebind.example": [PUBLIC]}
    monkeypatch.setattr(address_rules, "resolve", lambda host, port: answers[host])
    target_upsert(
        organization=gw.org,
        target_id="fake",
        provider="openai",
        base_url=f"http://rebind.example:{upstream.port}/v1",
        actor="t",
        via="api",
    )
    PriceFactory(provider="openai", model="gpt-test")
    clear_all()
    answers["rebind.example"] = ["127.0.0.1"]

    response = chat(live_server)

    assert_refused_and_recorded(gw, response, 502, "upstream_not_allowed")
    assert "resolves to a loopback address" in response.json()["error"]["message"]
    assert "127.0.0.1" not in response.json()["error"]["message"]  # the log has it, not the tenant
    assert upstream.seen.connections == 0

    # The operator allows loopback: the gateway connects to the address it checked (the name
    # itself resolves nowhere in real DNS), and the call is served.
    settings.KT_UPSTREAM_ALLOW_NETWORKS = ["127.0.0.0/8"]
    assert chat(live_server).status_code == 200
    assert len(upstream.seen.requests) == 1


def test_localhost_really_resolving_to_loopback_is_refused_at_connect_time(
    gw, live_server, fake_provider, settings
):
    """The same with a real name: `localhost` resolves to 127.0.0.1 (no patching). The fake
    provider's own host:port is allowed, the name `localhost` for it is not."""
    settings.KT_UPSTREAM_ALLOW_HTTP = True
    port = fake_provider.rsplit(":", 1)[1]
    point(gw, base_url=f"http://localhost:{port}/v1")

    response = chat(live_server)

    assert_refused_and_recorded(gw, response, 502, "upstream_not_allowed")


def test_plain_http_to_a_host_the_operator_did_not_allow_is_refused_at_connect_time(
    gw, live_server, upstream
):
    point(gw, base_url=f"{upstream.url}/v1")

    response = chat(live_server, stream=True)

    assert_refused_and_recorded(gw, response, 502, "upstream_not_allowed")
    assert "plain http" in response.json()["error"]["message"]
    assert upstream.seen.connections == 0


def test_the_operators_allow_list_lets_the_fake_provider_serve(
    gw, live_server, fake_provider, settings
):
    """Every gateway test runs against the fake provider on 127.0.0.1 because the test setup
    allows exactly its host:port (tests/gateway/conftest.py); the strict default refuses it."""
    port = int(fake_provider.rsplit(":", 1)[1])
    assert address_rules.policy().host_ports == {("127.0.0.1", port)}
    assert address_rules.policy().url_problem(fake_provider) is None
    saved = settings.KT_UPSTREAM_ALLOW_HOSTS
    settings.KT_UPSTREAM_ALLOW_HOSTS = []
    assert "uses plain http" in address_rules.policy().url_problem(fake_provider)
    settings.KT_UPSTREAM_ALLOW_HTTP = True
    assert "127.0.0.1 is a loopback address" in address_rules.policy().url_problem(fake_provider)
    settings.KT_UPSTREAM_ALLOW_HOSTS, settings.KT_UPSTREAM_ALLOW_HTTP = saved, False
    response = httpx.post(
        f"{live_server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert response.status_code == 200
    assert UsageEvent.objects.get().status == "ok"
