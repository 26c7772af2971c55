"""Dashboard pages (Django session login, one organization). Thin: resolve who and when, ask
`overview` or `department` for the figures, render HTML or one table as CSV."""

from datetime import date, timedelta

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import render

from chargeback.errors import ApplicationError, NotFound
from chargeback.periods import local_today, month_start
from chargeback.replica import reads_from_replica, replica_lag_notice
from gateway.rollups import rollups_memo
from reports.dashboards import selectors as sel
from reports.dashboards.csv import table_csv_response
from reports.dashboards.department import department_page
from reports.dashboards.overview import overview_page
from reports.dashboards.tables import month_label


def _context(request):
    try:
        organization = sel.dashboard_organization(user=request.user, slug=request.GET.get("org"))
    except NotFound as exc:
        raise Http404(str(exc)) from None
    raw = request.GET.get("month")
    month = sel.month_parse(raw) if raw else sel.month_latest_with_events(organization=organization)
    return organization, month


def _csv_or_page(request, data, template, context, prefix):
    if request.GET.get("format") == "csv":
        name = request.GET.get("table") or data["tables"][0].name
        table = next((t for t in data["tables"] if t.name == name), None)
        if table is None:
            raise Http404("no such table")
        return table_csv_response(table, filename=f"{prefix}-{name}-{context['month_param']}.csv")
    return render(request, template, {**context, **data})


@login_required
@reads_from_replica
def overview(request):
    try:
        organization, month = _context(request)
    except ApplicationError as exc:
        return HttpResponseBadRequest(exc.message)
    departments = sel.dashboard_departments(organization=organization, user=request.user)
    full_access = departments.count() == organization.departments.count()
    context = _base(request, organization, month)
    with rollups_memo():  # its figures ask the same month's rollups under several names
        data = overview_page(
            organization=organization,
            departments=departments,
            month=month,
            full_access=full_access,
            query=context["query"],
        )
    return _csv_or_page(request, data, "dashboards/overview.html", context, "departments")


@login_required
@reads_from_replica
def department(request, team_id: str):
    try:
        organization, month = _context(request)
        as_of = date.fromisoformat(request.GET["as_of"]) if request.GET.get("as_of") else None
    except (ApplicationError, ValueError) as exc:
        return HttpResponseBadRequest(getattr(exc, "message", "as_of must look like YYYY-MM-DD"))
    try:
        dept = sel.dashboard_department(
            organization=organization, user=request.user, team_id=team_id
        )
    except NotFound as exc:
        raise Http404(str(exc)) from None
    with rollups_memo():
        data = department_page(organization=organization, department=dept, month=month, as_of=as_of)
    context = {**_base(request, organization, month), "department": dept}
    if as_of is not None:
        context["as_of_query"] = f"&as_of={as_of.isoformat()}"
    return _csv_or_page(request, data, "dashboards/department.html", context, team_id)


def _base(request, organization, month):
    previous = sel.month_previous(month)
    following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    org_param = f"&org={organization.slug}" if request.user.is_superuser else ""
    # The current month is still running: one click to the last one whose figures are final.
    last_complete = sel.month_previous(month_start(local_today(organization)))
    return {
        "last_complete_param": last_complete.strftime("%Y-%m"),
        "last_complete_label": month_label(last_complete),
        "showing_last_complete": month == last_complete,
        "organization": organization,
        "month": month,
        "month_param": month.strftime("%Y-%m"),
        "month_label": month_label(month),
        "previous_param": previous.strftime("%Y-%m"),
        "next_param": following.strftime("%Y-%m"),
        "org_param": org_param,
        "query": f"month={month:%Y-%m}{org_param}",
        "replica_lag": replica_lag_notice(),
    }
