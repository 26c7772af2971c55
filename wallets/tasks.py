"""Celery tasks of the wallets app (autodiscovered): the cost ticket e-mail."""

from wallets.tickets.notify import ticket_opened_notify

__all__ = ["ticket_opened_notify"]
