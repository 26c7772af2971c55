"""Export job lookups, always inside one organization."""

from django.db.models import QuerySet

from chargeback.errors import NotFound
from chargeback.models import Organization
from reports.models import ExportJob


def export_job_list(*, organization: Organization, status: str = "", type: str = "") -> QuerySet:
    qs = ExportJob.objects.filter(organization=organization).select_related("organization")
    if status:
        qs = qs.filter(status=status)
    if type:
        qs = qs.filter(type=type)
    return qs.order_by("-created_at", "-id")


def export_job_get(*, organization: Organization, job_id: str) -> ExportJob:
    """Another organization's job is NotFound (404), never a 403 that confirms it exists."""
    job = (
        ExportJob.objects.select_related("organization")
        .filter(organization=organization, pk=job_id)
        .first()
    )
    if job is None:
        raise NotFound(f"no export job {job_id}")
    return job
