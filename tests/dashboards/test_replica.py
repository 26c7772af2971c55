"""Reports read from a read replica when one is configured: a real streaming standby on
loopback (tests/replica_cluster.py). Replay is paused on the standby, then a request is written
on the primary: what the dashboard, the spend API and an export file show proves where they
read, and the page states the lag. The gateway's and the wallets' reads never move (chargeback/replica.py)."""

import copy
import time

import pytest
from django.core.files.storage import default_storage
from django.db import connections, transaction
from rest_framework.test import APIClient

from chargeback.money import to_cents
from chargeback.replica import read_alias, replica_reads
from gateway.selectors import spend_total
from reports.exports.running import export_job_run
from reports.exports.services import export_job_create
from reports.models import ExportJob
from tests.dashboards.test_dashboard_pages import MAY
from tests.replica_cluster import start_pair

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:Overriding setting DATABASES:UserWarning"),
]


@pytest.fixture
def replica(settings):
    """The test's `default` database moved to a fresh primary, and `replica` its standby."""
    default = connections["default"]
    saved = copy.deepcopy(default.settings_dict)
    pair, stop = start_pair(source=saved)
    default.close()
    if "pool" in saved.get("OPTIONS", {}):
        default.close_pool()
    moved = copy.deepcopy(saved)
    moved["OPTIONS"].pop("pool", None)  # plain connections: nothing outlives the clusters
    moved.update(HOST="127.0.0.1", PORT=str(pair.primary.port))
    default.settings_dict = moved
    standby = {**copy.deepcopy(moved), "PORT": str(pair.standby.port)}
    connections.settings["replica"] = standby
    settings.DATABASES = {**settings.DATABASES, "replica": standby}
    settings.KT_REPLICA_LAG_NOTICE_SECONDS = 0.5
    # Django's test case refuses to open connections to aliases it was not told about when it
    # started; this one is opened here (and the test client keeps connections between requests).
    connections["replica"].connect()
    try:
        yield pair
    finally:
        for alias in ("replica", "default"):
            connections[alias].close()
        del connections["replica"]
        del connections.settings["replica"]
        default.settings_dict = saved
        stop()


def _event_on_primary_only(replica, events, engineering):
    """Replay paused, one more request on the primary; then wait past the lag threshold."""
    replica.wait_caught_up()
    replica.pause_replay()
    events.add(engineering, day=7, prompt=900_000, completion=9_000, user="zed-after-pause")
    replica.wait_received()
    time.sleep(1.0)  # the standby's replay now stands > KT_REPLICA_LAG_NOTICE_SECONDS behind


def test_the_dashboard_reads_from_the_replica_and_states_its_lag(
    replica, client, month, member, events
):
    client.force_login(member)
    _event_on_primary_only(replica, events, month["engineering"])

    page = client.get("/dashboard/departments/team_engineering/?month=2026-05")
    assert page.status_code == 200
    text = page.content.decode()
    assert "zed-after-pause" not in text  # written on the primary, not yet replayed
    assert "read replica" in text
    assert "seconds behind" in text

    replica.resume_replay()
    replica.wait_caught_up()
    text = client.get("/dashboard/departments/team_engineering/?month=2026-05").content.decode()
    assert "zed-after-pause" in text  # the same page, once the standby has replayed it
    assert "seconds behind" not in text  # caught up: no lag to state


def test_the_spend_api_answers_from_the_replica(replica, org, month, admin_token, events):
    before = to_cents(spend_total(organization=org, **MAY))
    _event_on_primary_only(replica, events, month["engineering"])
    on_primary = to_cents(spend_total(organization=org, **MAY))  # outside: the primary
    assert on_primary > before

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {admin_token}")
    response = api.get("/v1/spend", {"by": "team", "month": "2026-05"})
    assert response.status_code == 200
    assert response.json()["total"] == str(before)
    assert float(response["X-Replica-Lag-Seconds"]) > 0.5

    replica.resume_replay()
    replica.wait_caught_up()
    response = api.get("/v1/spend", {"by": "team", "month": "2026-05"})
    assert response.json()["total"] == str(on_primary)
    assert "X-Replica-Lag-Seconds" not in response


def test_only_report_reads_go_to_the_replica(replica):
    assert read_alias() == "default"  # the gateway, wallets, admin: the primary
    with replica_reads():
        assert read_alias() == "replica"
        with transaction.atomic():  # a read inside a write's transaction sees that write
            assert read_alias() == "default"
    port = connections["replica"].settings_dict["PORT"]
    assert port == str(replica.standby.port)
    with replica_reads(), connections["replica"].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), current_setting('port')")
        assert cursor.fetchone() == (True, port)


def test_readiness_reports_the_replica_and_its_lag(replica, client, settings):
    settings.ALLOWED_HOSTS = ["*"]
    replica.wait_caught_up()
    body = client.get("/readyz").json()
    assert body["checks"]["database:replica"] == "ok"
    assert body["replica"]["standby"] is True
    assert body["replica"]["behind"] is False
    replica.pause_replay()
    with connections["default"].cursor() as cursor:
        cursor.execute("CREATE TABLE lag_probe AS SELECT 1 AS one")
    replica.wait_received()
    time.sleep(1.0)
    body = client.get("/readyz").json()
    assert body["replica"]["behind"] is True, body
    assert body["replica"]["lag_seconds"] > 0.5


def test_an_export_job_reads_its_rows_from_the_replica(replica, org, month, events, settings, tmp_path):  # fmt: skip
    settings.MEDIA_ROOT = str(tmp_path / "media")
    _event_on_primary_only(replica, events, month["engineering"])

    def export():
        job = export_job_create(
            organization=org, type="events", format="csv",
            date_from="2026-05-01", date_to="2026-05-31",
        )  # fmt: skip
        job = export_job_run(job_id=job.id) or job  # eager already, or run now: idempotent
        job.refresh_from_db()  # the job's own rows are written on the primary
        assert job.status == ExportJob.Status.COMPLETED, job.error
        with default_storage.open(job.file.name) as f:
            return f.read().decode()

    assert "zed-after-pause" not in export()
    replica.resume_replay()
    replica.wait_caught_up()
    assert "zed-after-pause" in export()
