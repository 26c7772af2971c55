#!/usr/bin/env python3
"""Redis goes away under the production setup: the figures of docs/reliability.md section 5.

  python bench/faults/redis_outage.py                 # both parts, about 2 minutes
  python bench/faults/redis_outage.py --part gateway  # or --part worker; --requests 15 --outage 30

Everything runs on private redis-servers on free loopback ports, never on the shared Redis.
DATABASE_URL (default postgres://postgres@127.0.0.1:5432/cb_faults_redis) is created, migrated
and reset here.

gateway: gunicorn with portal/gunicorn_conf.py (1 worker x 128 threads), the built-in fake
provider, two organizations whose consumer groups have rate limits: `open` keeps the default,
`closed` fails closed (where the build has the choice). Three phases: Redis stopped, N requests
per organization (half of them streamed); N requests per organization sent with the provider
answering after 1 s, Redis stopped once N of them hold funds (admitted, waiting for the
provider); Redis back, N more. Per phase and organization it prints
the answers (2xx, 429, 503, 500, other, cut streams) and the accounting: calls charged, and
charged calls whose client got an error or a cut stream.

worker: `celery worker` (prefork, 2 processes) and `celery beat` on a Redis with an append-only
file, as docker-compose runs it. The worker holds tasks with a countdown (as it holds every
`budgets.check_spend`) when Redis stops for --outage seconds; prints whether worker and beat
are alive after the outage and after Redis is back, and how many held tasks ran.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ["DATABASE_URL"] = os.environ.get(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cb_faults_redis"
)
os.environ.pop("REDIS_URL", None)  # this process only writes rows; its children get a Redis
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import httpx  # noqa: E402
import psycopg  # noqa: E402

with psycopg.connect(
    os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres", autocommit=True
) as _conn:
    _name = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    if not _conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [_name]).fetchone():
        _conn.execute(f'CREATE DATABASE "{_name}"')

import django  # noqa: E402

django.setup()
from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0)

from chargeback.models import Organization, ProviderTarget  # noqa: E402
from gateway.fake_provider import start_in_thread  # noqa: E402
from gateway.models import UsageEvent  # noqa: E402
from tests.factories import ConsumerGroupFactory, DepartmentFactory, PriceFactory  # noqa: E402
from tests.ports import free_port  # noqa: E402
from tests.private_redis import PrivateRedis  # noqa: E402
from wallets import services  # noqa: E402
from wallets.models import Hold, LedgerEntry  # noqa: E402

CELERY = str(Path(sys.executable).with_name("celery"))
MODEL = "faults-chat"  # priced here for the fake provider
CAN_FAIL_CLOSED = hasattr(Organization, "RateLimitsUnavailable")
RUN = time.strftime("%Y%m%d%H%M%S")


def setup_tenants() -> dict[str, str]:
    """Two new organizations (the ledger keeps the last run's), their rate-limited groups and
    funded wallets; returns name -> key."""
    keys = {}
    for name in ("open", "closed"):
        org = Organization.objects.create(name=f"faults {name}", slug=f"faults-{name}-{RUN}")
        if name == "closed" and CAN_FAIL_CLOSED:
            org.rate_limits_unavailable = "closed"
            org.save()
        department = DepartmentFactory(organization=org, team_id="team_faults")
        keys[name] = f"kt_cg_faults_{name}_{RUN}"
        ConsumerGroupFactory(
            department=department, key=keys[name], rpm_limit=100_000, tpm_limit=100_000_000
        )
        ProviderTarget.objects.create(organization=org, target_id="fake", provider="fake")
        PriceFactory(organization=org, model=MODEL, max_output_tokens=100)
        services.wallet_allocate(department=department, amount=Decimal(1000), currency="USD")
    return keys


def start_gunicorn(env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**env, "KT_HOST": "127.0.0.1", "PORT": str(port), "WEB_WORKERS": "1"}
    env["WEB_THREADS"] = "128"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "portal/gunicorn_conf.py", "portal.wsgi"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/v1/models", timeout=2)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def one_call(url: str, key: str, stream: bool, latency_ms: int = 0) -> str:
    """One chat completion: `2xx`, `cut` (a stream without its end), or the status code."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "stream": stream}
    headers = {"Authorization": f"Bearer {key}", "x-fake-latency": str(latency_ms)}
    try:
        with httpx.stream(
            "POST", f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30
        ) as response:
            text = "".join(response.iter_text())
            if response.status_code >= 300:
                return str(response.status_code)
            if stream and "data: [DONE]" not in text:
                return "cut"
            return "2xx"
    except httpx.HTTPError:
        return "cut" if stream else "error"


def calls(url: str, keys: dict, count: int, latency_ms: int = 0, on_started=None) -> dict:
    jobs = [(name, i % 2 == 1) for name in keys for i in range(count)]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(one_call, url, keys[n], s, latency_ms) for n, s in jobs]
        if on_started:
            on_started()
        outcomes = [f.result() for f in futures]
    table: dict = {name: {} for name in keys}
    for (name, _), outcome in zip(jobs, outcomes, strict=True):
        table[name][outcome] = table[name].get(outcome, 0) + 1
    return table


def accounting(name: str) -> dict:
    org = Organization.objects.get(slug=f"faults-{name}-{RUN}")
    charged = UsageEvent.objects.filter(organization=org, status="ok").count()
    captures = LedgerEntry.objects.filter(organization=org, kind="capture").count()
    pending = Hold.objects.filter(organization=org, status="pending").count()
    return {"charged": charged, "captures": captures, "pending_holds": pending}


def gateway_part(requests: int) -> dict:
    keys = setup_tenants()
    provider, fake_url = start_in_thread()
    results = {"can_fail_closed": CAN_FAIL_CLOSED}
    with tempfile.TemporaryDirectory() as directory:
        redis = PrivateRedis(Path(directory)).start()
        env = {**os.environ, "REDIS_URL": redis.url(), "KT_FAKE_PROVIDER_URL": fake_url}
        env["KT_EMBEDDED"] = "true"
        gunicorn, url = start_gunicorn(env)
        try:
            calls(url, keys, 2)  # warm: connections, key cache
            before = {name: accounting(name) for name in keys}
            redis.stop()
            results["redis stopped"] = calls(url, keys, requests)
            redis.start()
            time.sleep(3)  # the gateway retries its store after KT_RATELIMIT_STORE_RETRY_SECONDS

            pending = Hold.objects.filter(status="pending", organization__slug__endswith=RUN)

            def stop_when_held():
                deadline = time.monotonic() + 10
                while pending.count() < requests and time.monotonic() < deadline:
                    time.sleep(0.02)
                results["held when redis stopped"] = pending.count()
                redis.stop()

            results["redis stops mid-request"] = calls(url, keys, requests, 1000, stop_when_held)
            redis.start()
            time.sleep(3)
            results["redis back"] = calls(url, keys, requests)
            after = {name: accounting(name) for name in keys}
        finally:
            gunicorn.terminate()
            gunicorn.wait(30)
            redis.stop()
            provider.shutdown()
    for name in keys:
        answered = sum(phase[name].get("2xx", 0) for phase in _phases(results))
        charged = after[name]["charged"] - before[name]["charged"]
        results[f"accounting {name}"] = {
            "answered": answered,
            "charged": charged,
            "charged_not_answered": charged - answered,
            "pending_holds": after[name]["pending_holds"],
            "captures_equal_charged": after[name]["captures"] == after[name]["charged"],
        }
    return results


def _phases(results: dict):
    return [results[k] for k in ("redis stopped", "redis stops mid-request", "redis back")]


def worker_part(outage: int) -> dict:
    from django.conf import settings
    from kombu import Connection

    from portal.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False  # no REDIS_URL here: it sends to the private one
    held, results = 12, {}
    with tempfile.TemporaryDirectory() as directory:
        directory = Path(directory)
        done = directory / "done"
        done.mkdir()
        redis = PrivateRedis(directory / "redis", persistent=True).start()
        env = {**os.environ, "REDIS_URL": redis.url(), "CELERY_TASK_ALWAYS_EAGER": "false"}
        env.update({"PYTHONPATH": str(REPO), "DB_POOL_MAX": "2", "KT_EMBEDDED": "true"})
        env["KT_BROKER_VISIBILITY_TIMEOUT"] = "20"  # builds without the setting keep 3600
        logs = {kind: (directory / f"{kind}.log").open("w") for kind in ("worker", "beat")}
        worker = subprocess.Popen(
            [
                CELERY,
                "-A",
                "portal",
                "worker",
                "-l",
                "info",
                "--concurrency=2",
                "-I",
                "tests.operations.outage_tasks",
            ],
            cwd=REPO,
            env=env,
            stdout=logs["worker"],
            stderr=subprocess.STDOUT,
        )
        beat = subprocess.Popen(
            [CELERY, "-A", "portal", "beat", "-l", "info", "-s", str(directory / "schedule")],
            cwd=REPO,
            env=env,
            stdout=logs["beat"],
            stderr=subprocess.STDOUT,
        )
        try:
            while " ready." not in (directory / "worker.log").read_text():
                time.sleep(0.2)
            with Connection(redis.url()) as connection:
                for index in range(held):
                    app.send_task(
                        "tests.outage.record",
                        args=[str(done), index],
                        countdown=8 + index % 6,
                        connection=connection,
                    )
            time.sleep(2)  # received and held: due in 8-13 s
            redis.stop()
            time.sleep(outage)
            results["worker alive after the outage"] = worker.poll() is None
            results["beat alive after the outage"] = beat.poll() is None
            redis.start()
            deadline = time.monotonic() + 60
            while len({p.name.split(".")[0] for p in done.iterdir()}) < held:
                if time.monotonic() > deadline or worker.poll() is not None:
                    break
                time.sleep(0.5)
            results["held tasks run"] = (
                f"{len({p.name.split('.')[0] for p in done.iterdir()})}/{held}"
            )
            results["worker alive at the end"] = worker.poll() is None
            text = (directory / "worker.log").read_text()
            results["unrecoverable error"] = next(
                (line for line in text.splitlines() if "Unrecoverable error" in line), ""
            )
        finally:
            for process in (worker, beat):
                process.terminate()
                process.wait(30)
            redis.stop()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["gateway", "worker", "both"], default="both")
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--outage", type=int, default=30)
    args = parser.parse_args()
    import celery
    import kombu

    report = {"celery": celery.__version__, "kombu": kombu.__version__}
    if args.part in ("gateway", "both"):
        report["gateway"] = gateway_part(args.requests)
    if args.part in ("worker", "both"):
        report["worker"] = worker_part(args.outage)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
