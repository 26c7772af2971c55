"""No raw key or provider secret in any log line: a full gateway round on the live server (JSON
and stream calls, an Anthropic-shaped call to a target keyed by an environment variable, a
wrong key, the management API storing a secret and queueing an export) with every logger at
DEBUG, SQL included, plus the real Celery worker's own DEBUG log of the tasks that round
queued (budget checks, the export, the gauges)."""

import logging
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection

from chargeback.models import ProviderSecret, ProviderTarget
from gateway.cache import clear_all
from reports.models import ExportJob
from tests.factories import AdminTokenFactory, PriceFactory
from tests.gateway.conftest import GATEWAY_APPS, KEY, OUTSIDER_KEY, allow_test_env_refs

CELERY = str(Path(os.sys.executable).parent / "celery")
STORED_SECRET = "sk-stored-LOGCHECK-0123456789abcdefSTORED"
ENV_SECRET = "sk-ant-env-LOGCHECK-0123456789abcdefENV"
ADMIN_TOKEN = "kt_admin_logcheck_0123456789abcdef"
WRONG_KEY = "kt_cg_wrong_LOGCHECK_0123456789abcdef"

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True, available_apps=GATEWAY_APPS),
]


@pytest.fixture
def worker(tmp_path, settings):
    db = connection.settings_dict
    settings.MEDIA_ROOT = str(tmp_path / "media")
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "MEDIA_ROOT": settings.MEDIA_ROOT,
        "DB_POOL_MAX": "2",
        "LOG_LEVEL": "DEBUG",
        "DEBUG": "true",  # SQL statements logged too
        "KT_SECRETS_KEY": settings.KT_SECRETS_KEY,
    }
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            CELERY,
            *("-A", "portal", "worker", "--pool=solo", "-l", "debug"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=settings.BASE_DIR,
    )
    proc.log_path = log_path
    yield proc
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture
def everything_at_debug(caplog, settings):
    """Every logger at DEBUG (the settings quiet httpx and SQL), SQL through the debug cursor."""
    settings.DEBUG = True
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _wait_for(condition, what: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def test_no_raw_key_or_provider_secret_in_any_log(
    gw, live_server, fake_provider, worker, everything_at_debug, monkeypatch, settings
):
    settings.KT_BUDGET_CHECK_SECONDS = 0  # each capture queues its budget check at once
    AdminTokenFactory(organization=gw.org, raw=ADMIN_TOKEN)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    base = live_server.url
    stored = httpx.post(
        f"{base}/v1/provider-secrets",
        headers=admin,
        json={"name": "openai-logcheck", "value": STORED_SECRET},
        timeout=30,
    )
    assert stored.status_code == 201, stored.text
    # The organization's target: OpenAI-shaped, keyed by the stored secret, at the fake provider.
    ProviderTarget.objects.filter(pk=gw.target.pk).update(
        provider="openai",
        base_url=f"{fake_provider}/v1",
        secret=ProviderSecret.objects.get(name="openai-logcheck"),
    )
    PriceFactory(provider="openai", model="gpt-logcheck")
    # The outsider's target: Anthropic-shaped, keyed by an allowed environment variable.
    monkeypatch.setenv("KT_TEST_LOGCHECK_KEY", ENV_SECRET)
    allow_test_env_refs(gw.outsider_org)
    ProviderTarget.objects.filter(organization=gw.outsider_org).update(
        provider="anthropic", base_url=fake_provider, secret_env="KT_TEST_LOGCHECK_KEY"
    )
    PriceFactory(organization=gw.outsider_org, provider="anthropic", model="outsider-only")
    clear_all()

    chat = {"model": "gpt-logcheck", "messages": [{"role": "user", "content": "hello"}]}
    with httpx.Client(base_url=base, timeout=30) as client:
        ours = {"Authorization": f"Bearer {KEY}"}
        replies = [
            client.post("/v1/chat/completions", headers=ours, json=chat),
            client.post("/v1/chat/completions", headers=ours, json={**chat, "stream": True}),
            client.post(
                "/v1/messages",
                headers={"x-api-key": OUTSIDER_KEY, "anthropic-version": "2023-06-01"},
                json={"model": "outsider-only", "max_tokens": 50, "messages": chat["messages"]},
            ),
        ]
        wrong = client.post(
            "/v1/chat/completions", headers={"Authorization": f"Bearer {WRONG_KEY}"}, json=chat
        )
        export = client.post(
            "/v1/export-jobs",
            headers=admin,
            json={
                "type": "events",
                "format": "csv",
                "date_from": "2020-01-01",
                "date_to": "2020-01-31",
            },
        )
    assert [r.status_code for r in replies] == [200, 200, 200], [r.text for r in replies]
    assert wrong.status_code == 401
    assert export.status_code in (201, 202), export.text

    from observability.tasks import refresh_gauges_task

    refresh_gauges_task.delay()
    worker_log = worker.log_path
    _wait_for(
        lambda: ExportJob.objects.filter(status=ExportJob.Status.COMPLETED).exists(),
        "the worker did not run the export",
    )
    _wait_for(
        lambda: all(
            name in worker_log.read_text()
            for name in ("budgets.check_spend", "observability.refresh_gauges")
        ),
        "the worker did not run the budget checks and the gauges",
    )
    time.sleep(1)  # the worker's last lines

    logged = everything_at_debug.text + "\n" + worker_log.read_text()
    assert "SELECT" in logged  # SQL was logged, and the requests: the check sees real lines
    assert "/v1/chat/completions" in logged
    assert "succeeded in" in worker_log.read_text()  # and the worker's task lines
    for secret in (KEY, OUTSIDER_KEY, WRONG_KEY, ADMIN_TOKEN, STORED_SECRET, ENV_SECRET):
        assert secret not in logged, f"{secret[:12]}… appears in the logs"
        assert secret[-16:] not in logged, f"the end of {secret[:12]}… appears in the logs"
    assert settings.REDIS_URL
