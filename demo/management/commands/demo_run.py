"""`python manage.py demo_run --port 41002` (what `make run` calls): set up the demo database,
then serve it with gunicorn (never runserver) until Ctrl-C."""

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo.setup import (
    DEMO_ENV_REFS,
    banner,
    demo_setup,
    gunicorn_command,
    port_is_free,
    site_url_follow_port,
    start_fake_provider,
    wait_for_port,
)
from demo.worker import broker_prepare, publish, start_embedded_worker

WILDCARD_HOSTS = {"0.0.0.0", "::", ""}  # noqa: S104 - only compared, never bound here


class Command(BaseCommand):
    help = "Set up the embedded demo (SQLite, a Celery worker with beat, fake provider), serve it."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=41002)
        parser.add_argument("--host", default=os.environ.get("KT_HOST", "127.0.0.1"))
        parser.add_argument("--fake-provider-port", type=int, default=41003)
        parser.add_argument(
            "--setup-only", action="store_true", help="prepare the database, do not serve"
        )

    def handle(self, *args, **options):
        host, port = options["host"], options["port"]
        site_url_follow_port(host, port)
        if not options["setup_only"] and not port_is_free(host, port):
            raise CommandError(f"port {port} is already in use on {host} (another demo running?)")
        children = []
        broker_dir = None
        if not options["setup_only"]:
            # SIGTERM (kill PID) unwinds like Ctrl-C, so the children below are always stopped.
            signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            fake_url = ""
            # The fake serves whichever provider has no key in the environment (offline mode).
            missing_key = not all(os.environ.get(name) for name in DEMO_ENV_REFS)
            if missing_key and not options["setup_only"]:
                fake_url, child = start_fake_provider(
                    "127.0.0.1", options["fake_provider_port"], self._log
                )
                if child is not None:
                    children.append(child)
                if fake_url:
                    os.environ["KT_FAKE_PROVIDER_URL"] = fake_url  # for gunicorn
                    settings.KT_FAKE_PROVIDER_URL = fake_url  # for demo_seed, in this process
            info = demo_setup(log=self._log)
            if options["setup_only"]:
                self.stdout.write(banner(info, port=port, fake_url=fake_url, serving=False))
                return
            env = {**os.environ, "PORT": str(port), "KT_HOST": host}
            if not settings.REDIS_URL:
                # No Redis: the production schedule on an embedded broker (demo/worker.py).
                broker_dir = Path(tempfile.mkdtemp(prefix="kt-embedded-broker-"))
                env.update(broker_prepare(broker_dir))
                children.append(start_embedded_worker(broker_dir, env=env))
                # Beat's hourly evaluation first runs an hour after start: the simulated month
                # gets its budget and forecast alerts now.
                publish(broker_dir, "budgets.evaluate_all")
                self._log(f"celery worker with beat on the embedded broker in {broker_dir}")
            server = subprocess.Popen(gunicorn_command(), env=env)  # noqa: S603
            children.append(server)
            probe = host if host not in WILDCARD_HOSTS else "127.0.0.1"
            if not wait_for_port(probe, port, process=server):
                raise CommandError(f"gunicorn did not start on port {port}")
            self.stdout.write(banner(info, port=port, fake_url=fake_url))
            self.stdout.flush()
            server.wait()
        except KeyboardInterrupt:
            self._log("stopping")
        finally:
            for child in reversed(children):
                if child.poll() is None:
                    child.terminate()
            for child in children:
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
            if broker_dir is not None:
                shutil.rmtree(broker_dir, ignore_errors=True)

    def _log(self, message: str) -> None:
        self.stdout.write(f"demo: {message}")
        self.stdout.flush()


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt
