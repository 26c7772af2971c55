"""The demo's configuration (demo/setup.py) serves Claude models as well as OpenAI ones: the
real `anthropic` SDK against the live server, the fake provider standing in for both
providers because neither key is set (offline mode)."""

from decimal import Decimal

import anthropic
import openai
import pytest

from chargeback.models import Department
from demo.setup import demo_setup
from gateway.catalog import catalog_load
from wallets import services

pytestmark = pytest.mark.django_db(transaction=True)

ENGINEERING = "kt_cg_engineering_prod"


@pytest.fixture
def demo(live_server, fake_provider, settings, monkeypatch):
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings.KT_FAKE_PROVIDER_URL = fake_provider
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    catalog_load()  # the shipped catalog (a flushed live-server database has none)
    info = demo_setup(migrate=False, admin_password="demo-pass-for-test", seed=False)
    engineering = Department.objects.get(organization=info.organization, team_id="team_engineering")
    services.wallet_allocate(department=engineering, amount=Decimal("100.00"), currency="USD")
    return info


def test_the_anthropic_sdk_calls_a_claude_model_with_the_demo_configuration(demo, live_server):
    claude = anthropic.Anthropic(base_url=live_server.url, api_key=ENGINEERING, max_retries=0)

    message = claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": "Hello"}],
    )

    assert message.content[0].text
    assert message.usage.input_tokens > 0
    wallet = services.wallet_for_team(department=Department.objects.get(team_id="team_engineering"))
    assert wallet.balance < Decimal("100.00")  # charged at the Claude price


def test_the_openai_sdk_still_calls_the_openai_models(demo, live_server):
    oai = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=ENGINEERING, max_retries=0)

    reply = oai.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
    )

    assert reply.choices[0].message.content


def test_a_model_no_target_serves_is_refused_with_the_models_the_group_can_use(demo, live_server):
    claude = anthropic.Anthropic(base_url=live_server.url, api_key=ENGINEERING, max_retries=0)

    with pytest.raises(anthropic.BadRequestError) as exc:
        claude.messages.create(
            model="claude-nonexistent-9",
            max_tokens=50,
            messages=[{"role": "user", "content": "Hello"}],
        )

    error = exc.value.body["error"]
    assert error["type"] == "invalid_request_error"
    message = error["message"]
    assert "Models consumer group engineering can use here:" in message
    assert "claude-haiku-4-5" in message
    assert "claude-sonnet-4-5" in message
    assert "gpt-4o-mini" in message
    assert "text-embedding-3-small" not in message  # not a model for /v1/messages
