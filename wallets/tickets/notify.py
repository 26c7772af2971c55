"""The e-mail to a department's budget owners when a cost ticket opens: a Celery task, so the
gateway's refusal never waits on SMTP. Recipients: the department's owner e-mails and the
e-mails of its budget-owner members (the budgets app's own recipients live above wallets).

Every refused request opens a ticket, so a client retrying against an empty wallet opens many:
the owners get the first ticket of a department's burst, and no e-mail for the department's
further tickets opened within NOTICE_WINDOW of an earlier one (they are on the pending list)."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMessage

from chargeback import display
from chargeback.models import Membership
from wallets.models_tickets import CostTicket
from wallets.tickets.selectors import ticket_follows_another

NOTICE_WINDOW = timedelta(minutes=15)


def ticket_recipients(ticket: CostTicket) -> list[str]:
    department = ticket.department
    if department is None:
        return []
    emails = [e for e in department.owner_emails if e]
    members = Membership.objects.filter(
        organization_id=ticket.organization_id,
        role=Membership.Role.BUDGET_OWNER,
        departments=department,
    ).select_related("user")
    emails += [m.user.email for m in members if m.user.email and m.user.email not in emails]
    return emails


@shared_task(name="wallets.cost_ticket_opened", ignore_result=True)
def ticket_opened_notify(ticket_pk: int) -> int:
    """Send the e-mail; returns the number of recipients (0: nobody to tell)."""
    ticket = (
        CostTicket.objects.select_related("department", "consumer_group")
        .filter(pk=ticket_pk)
        .first()
    )
    if ticket is None or _follows_a_notice(ticket):
        return 0
    to = ticket_recipients(ticket)
    if not to:
        return 0
    amount = display.amount(ticket.estimate, ticket.currency)
    department = ticket.department.name if ticket.department else "-"
    body = (
        f"A request could not be covered by any wallet and is waiting for approval.\n\n"
        f"Ticket: {ticket.ticket_id}\n"
        f"Department: {department}\n"
        f"Consumer group: {ticket.consumer_group.name if ticket.consumer_group else '-'}\n"
        f"User: {ticket.user_ref or '-'}\nModel: {ticket.model or '-'}\n"
        f"Estimate (worst case): {amount}\nRequest: {ticket.request_id}\n"
        f"Expires: {ticket.expires_at:%Y-%m-%d %H:%M} UTC\n\n"
        f"Approve or deny: kt cost-tickets approve|deny {ticket.ticket_id}, "
        f"or the admin's cost tickets page. Further tickets of the department in the next "
        f"{NOTICE_WINDOW.seconds // 60} minutes are on that page without another e-mail.\n"
    )
    subject = f"Cost ticket {ticket.ticket_id}: {amount} for {department}"
    EmailMessage(
        subject=" ".join(subject.split()),
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=to,
    ).send()
    return len(to)


def _follows_a_notice(ticket: CostTicket) -> bool:
    """Another ticket of the department opened within NOTICE_WINDOW before this one: its
    e-mail told the owners already."""
    return ticket_follows_another(ticket, window=NOTICE_WINDOW)
