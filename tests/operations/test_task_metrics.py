"""Celery task and export job metrics (Celery's signals, here with tasks run in-process), the
gauge snapshot, the switch, and who may scrape (the process's own registry: no multiprocess
directory in the test process)."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from celery import shared_task
from prometheus_client import REGISTRY

from observability import gauges
from reports.exports.services import export_job_create
from reports.models import ExportJob
from tests.exports.usage import fund, record_usage
from tests.factories import PriceFactory

pytestmark = pytest.mark.django_db


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@shared_task(name="tests.operations.always_fails")
def always_fails():
    raise RuntimeError("this task fails")


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def test_task_runs_failures_and_durations_are_counted(settings):
    settings.CELERY_TASK_EAGER_PROPAGATES = False
    ok = {"task": "observability.refresh_gauges"}
    failed = {"task": "tests.operations.always_fails"}
    before = (
        value("kt_celery_task_runs_total", **ok, outcome="success"),
        value("kt_celery_task_duration_seconds_count", **ok),
        value("kt_celery_task_runs_total", **failed, outcome="failure"),
        value("kt_celery_task_failures_total", **failed),
    )
    from observability.tasks import refresh_gauges_task

    refresh_gauges_task.delay()
    always_fails.delay()
    after = (
        value("kt_celery_task_runs_total", **ok, outcome="success"),
        value("kt_celery_task_duration_seconds_count", **ok),
        value("kt_celery_task_runs_total", **failed, outcome="failure"),
        value("kt_celery_task_failures_total", **failed),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 1]


def test_an_export_job_counts_its_rows_and_duration(
    org, engineering, media_root, django_capture_on_commit_callbacks
):
    PriceFactory(model="fake-gpt")
    fund(engineering)
    for day in (3, 4, 5):
        record_usage(
            department=engineering, at=datetime(2026, 5, day, 9, tzinfo=UTC), model="fake-gpt"
        )
    labels = {"type": "events", "format": "jsonl"}
    rows = value("kt_export_rows_total", **labels)
    runs = value("kt_export_job_duration_seconds_count", **labels, status="completed")
    with django_capture_on_commit_callbacks(execute=True):
        job = export_job_create(
            organization=org,
            type="events",
            format="jsonl",
            date_from="2026-05-01",
            date_to="2026-05-31",
        )
    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED
    assert value("kt_export_rows_total", **labels) - rows == job.rows_written == 3
    assert value("kt_export_job_duration_seconds_count", **labels, status="completed") - runs == 1


def test_the_gauge_snapshot_is_computed_once_per_interval(
    org, engineering, django_assert_max_num_queries, settings
):
    from django.core.cache import cache

    settings.KT_METRICS_GAUGE_SECONDS = 60
    fund(engineering, "250.00")
    cache.delete(gauges.SNAPSHOT_KEY)
    gauges.snapshot()  # computed (no snapshot yet)
    with django_assert_max_num_queries(0):  # then read from the cache, however many scrapes
        for _ in range(5):
            data = gauges.snapshot()
    families = {f.name: f for f in gauges.SnapshotCollector().collect()}
    wallet = [
        s for s in families["kt_wallet_available"].samples if s.labels["organization"] == "acme"
    ]
    # The organization's wallet too (no department): the allocation came from it (auto_fund).
    assert sorted((s.labels["department"], s.value) for s in wallet) == [
        ("", 0.0),
        ("team_engineering", 250.0),
    ]
    assert 0 <= families["kt_metrics_snapshot_age_seconds"].samples[0].value < 60
    assert data["wallets"]


def test_scrapes_need_the_token_or_an_allowed_address(client, settings):
    settings.KT_METRICS_TOKEN = "the-token"
    settings.KT_METRICS_ALLOW_IPS = ["10.1.0.0/16"]
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    wrong = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 403  # a wrong token is refused, wherever it comes from
    right = client.get("/metrics", REMOTE_ADDR="192.0.2.1", HTTP_AUTHORIZATION="Bearer the-token")
    assert right.status_code == 200
    assert right["Content-Type"].startswith("text/plain")
    assert (
        b"kt_wallet_available" in right.content
        or b"kt_metrics_snapshot_age_seconds" in right.content
    )


def test_metrics_off_answers_404(client, settings):
    settings.KT_METRICS_ENABLED = False
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 404


def test_spend_is_counted_in_the_events_currency():
    from observability.metrics import call_recorded
    from observability.recorder import flush

    labels = {"organization": "", "department": "", "model": "m-spend-test", "currency": "EUR"}
    before = value("kt_spend_total", **labels)
    event = {"status": "ok", "model_requested": "m-spend-test", "currency": "EUR"}
    call_recorded({**event, "cost": Decimal("0.00012345")}, None)
    call_recorded({**event, "cost": Decimal("0")}, None)
    flush()  # what the process's metrics thread does (observability/recorder.py)
    assert value("kt_spend_total", **labels) - before == pytest.approx(0.00012345)


def test_the_dashboard_and_alert_rules_use_only_metrics_that_exist():
    import json
    import re
    from pathlib import Path

    import observability.celery_metrics
    import observability.metrics  # noqa: F401

    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    exposed = {
        family.name + suffix
        for family in [*REGISTRY.collect(), *gauges.SnapshotCollector().collect()]
        for suffix in suffixes.get(family.type, [""])
        if family.name.startswith("kt_")
    }
    root = Path(__file__).resolve().parents[2]
    dashboard = json.loads((root / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    rules = (root / "deploy" / "prometheus" / "alerts.yml").read_text()
    used = set(re.findall(r"\bkt_[a-z_]+", " ".join(exprs) + rules))
    assert used, "the dashboard has queries"
    assert used <= exposed, used - exposed
