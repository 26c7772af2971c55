"""Under the gunicorn the gateway ships with: a client that goes away while its request waits
for funds (`cost_tickets: {mode: wait}`) withdraws its ticket, and nothing is held."""

import socket
import time

from wallets.models import Hold
from wallets.models_tickets import CostTicket

from .conftest import KEY
from .test_cost_tickets_wait import _broke_and_waiting
from .test_gunicorn import books, gunicorn, pytestmark  # noqa: F401  (its fixtures and marks)


def test_a_client_that_goes_away_while_waiting_cancels_its_ticket(gunicorn, books):  # noqa: F811
    _broke_and_waiting(books, seconds=30)
    body = (
        b'{"model": "fake-chat", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]}'
    )
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    client = socket.create_connection(("127.0.0.1", gunicorn), timeout=5)
    client.sendall(head + body)
    deadline = time.monotonic() + 10
    while not CostTicket.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert CostTicket.objects.get().status == "pending"  # it waits

    client.close()

    while CostTicket.objects.get().status == "pending" and time.monotonic() < deadline + 10:
        time.sleep(0.1)
    assert CostTicket.objects.get().status == "cancelled"
    assert not Hold.objects.exists()
