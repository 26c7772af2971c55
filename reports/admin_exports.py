"""Export jobs in the admin: list with status, progress and a download link; the add form
starts a job through the same service as the API. Scoping comes from OrgScopedAdmin: staff see
their own organization's jobs only (another's is a 404), superusers see all, budget owners none
(an export covers the whole organization)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from chargeback.admin_audit import audited_by_service
from chargeback.admin_base import OrgScopedAdmin, request_scope
from chargeback.auth import actor_of
from chargeback.errors import ApplicationError, Conflict
from chargeback.models import Organization
from reports.admin_manifest import manifest_table
from reports.exports.running import export_file_name
from reports.exports.services import export_job_create, export_job_download, export_job_validate
from reports.exports.writers import CONTENT_TYPES
from reports.models import ExportJob


def organization_of(request) -> Organization | None:
    """The staff user's organization (None for a superuser, who sees every organization)."""
    scope = request_scope(request)
    if scope.superuser:
        return None
    if scope.organization_id is None:
        raise PermissionDenied("this account belongs to no organization")
    return Organization.objects.get(pk=scope.organization_id)


class ExportJobAddForm(forms.ModelForm):
    """Staff get a subclass without the organization field (theirs is implied); superusers
    choose one. Validation is the service's own, shown as form errors."""

    team_id = forms.CharField(required=False, help_text="only this department (optional)")

    class Meta:
        model = ExportJob
        fields = ["organization", "type", "format", "date_from", "date_to"]

    def __init__(self, *args, organization=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization

    def clean(self):
        data = super().clean()
        org = self.organization or data.get("organization")
        if org is None or self.errors:
            return data
        filters = {"team_id": data["team_id"]} if data.get("team_id") else {}
        try:
            export_job_validate(
                organization=org,
                type=data.get("type"),
                format=data.get("format"),
                date_from=data.get("date_from"),
                date_to=data.get("date_to"),
                filters=filters,
            )
        except ApplicationError as exc:
            field = exc.field
            raise forms.ValidationError(
                {field if field in self.fields else "__all__": exc.message}
            ) from None
        data["organization"] = org
        data["filters"] = filters
        return data


class ExportJobAdmin(OrgScopedAdmin):
    list_display = [
        "id",
        "type",
        "format",
        "date_from",
        "date_to",
        "status",
        "progress",
        "download_link",
        "requested_by",
        "created_at",
    ]
    list_filter = ["status", "type", "format"]
    search_fields = ["id", "requested_by"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "id",
        "organization",
        "type",
        "format",
        "date_from",
        "date_to",
        "filters",
        "status",
        "rows_written",
        "rows_expected",
        "error",
        "download_link",
        "manifest_table",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
    ]
    exclude = ["file"]
    actions = ["export_again"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("organization")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            return super().get_form(request, obj, change=change, **kwargs)
        own = organization_of(request)
        fields = ExportJobAddForm.Meta.fields
        if own is not None:
            fields = [f for f in fields if f != "organization"]

        class Form(ExportJobAddForm):
            class Meta(ExportJobAddForm.Meta):
                pass

            def __init__(self, *args, **kw):
                super().__init__(*args, organization=own, **kw)

        Form.Meta.fields = fields
        return forms.models.modelform_factory(ExportJob, form=Form, fields=fields)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_exclude(self, request, obj=None):
        return self.exclude

    def get_fields(self, request, obj=None):
        if obj is not None:
            return self.readonly_fields
        fields = ["organization", "type", "format", "date_from", "date_to", "team_id"]
        return fields if organization_of(request) is None else fields[1:]

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = form.cleaned_data
        job = export_job_create(
            organization=data["organization"],
            type=data["type"],
            format=data["format"],
            date_from=data["date_from"],
            date_to=data["date_to"],
            filters=data.get("filters") or {},
            actor=actor_of(request),
            via="admin",
        )
        obj.pk = job.pk
        obj.organization = job.organization
        obj._state.adding = False
        messages.info(request, f"Export {job.id} queued.")

    @admin.action(description="Export again with the same settings", permissions=["add"])
    @audited_by_service  # export_job_create writes the export.requested row
    def export_again(self, request, queryset):
        for job in queryset:
            new = export_job_create(
                organization=job.organization,
                type=job.type,
                format=job.format,
                date_from=job.date_from,
                date_to=job.date_to,
                filters=job.filters,
                actor=actor_of(request),
                via="admin",
            )
            messages.info(request, f"Export {new.id} queued (again from {job.id}).")

    def has_change_permission(self, request, obj=None):
        return False  # a job is immutable: its page is read-only, new exports are added

    def has_delete_permission(self, request, obj=None):
        return False  # the record of what finance received stays

    @admin.display(description="progress")
    def progress(self, job):
        if job.status == ExportJob.Status.COMPLETED:
            return f"{job.rows_written:,} rows"
        if job.rows_expected:
            return f"{job.rows_written:,} / {job.rows_expected:,}"
        return "-"

    @admin.display(description="Manifest")
    def manifest_table(self, job):
        return manifest_table(job.manifest)

    @admin.display(description="file")
    def download_link(self, job):
        if job.status != ExportJob.Status.COMPLETED:
            return job.error[:80] if job.error else "-"
        url = reverse("admin:reports_exportjob_download", args=[job.pk])
        return format_html('<a href="{}">{}</a>', url, export_file_name(job))

    def get_urls(self):
        extra = [
            path(
                "<str:job_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="reports_exportjob_download",
            )
        ]
        return extra + super().get_urls()

    def download_view(self, request, job_id):
        # Through the scoped queryset, like every other view: another organization's job is a 404.
        job = self.get_queryset(request).filter(pk=job_id).first()
        if job is None:
            raise Http404(f"no export job {job_id}")
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        try:
            handle = export_job_download(job=job, actor=actor_of(request), via="admin")
        except Conflict as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(reverse("admin:reports_exportjob_changelist"))
        return FileResponse(
            handle,
            as_attachment=True,
            filename=export_file_name(job),
            content_type=CONTENT_TYPES[job.format],
        )


admin.site.register(ExportJob, ExportJobAdmin)
