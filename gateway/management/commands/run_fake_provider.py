"""Serve the built-in fake LLM provider (OpenAI and Anthropic wire formats) until interrupted."""

import threading

from django.core.management.base import BaseCommand

from gateway.fake_provider import start_in_thread


class Command(BaseCommand):
    help = "Run the built-in fake LLM provider (for the demo and offline development)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=0, help="0 picks a free port")

    def handle(self, *args, host, port, **options):
        server, base_url = start_in_thread(host=host, port=port)
        self.stdout.write(f"fake provider listening on {base_url}")
        self.stdout.write(f"point the gateway at it with KT_FAKE_PROVIDER_URL={base_url}")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
            server.server_close()
