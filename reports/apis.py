"""Management API for export jobs: thin views over reports.exports services and selectors."""

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from chargeback.auth import actor_of, via_of
from chargeback.openapi import conflict
from chargeback.pagination import LimitOffsetPage
from chargeback.serializers import DayField
from reports.exports.running import export_file_name
from reports.exports.selectors import export_job_get, export_job_list
from reports.exports.services import export_job_create, export_job_download
from reports.exports.writers import CONTENT_TYPES
from reports.models import ExportJob


class ExportJobOutputSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    file_name = serializers.SerializerMethodField()
    sha256 = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "type",
            "format",
            "date_from",
            "date_to",
            "filters",
            "status",
            "rows_written",
            "rows_expected",
            "progress",
            "error",
            "file_name",
            "sha256",
            "download_url",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_progress(self, job) -> float | None:
        if job.status == ExportJob.Status.COMPLETED:
            return 100.0
        if not job.rows_expected:
            return None
        return round(100.0 * min(job.rows_written, job.rows_expected) / job.rows_expected, 1)

    def get_file_name(self, job) -> str:
        return export_file_name(job) if job.file else ""

    def get_sha256(self, job) -> str:
        return (job.manifest or {}).get("file", {}).get("sha256", "")

    def get_download_url(self, job) -> str:
        if job.status != ExportJob.Status.COMPLETED:
            return ""
        return reverse("export-job-download", args=[job.pk])


STATUSES = ", ".join(ExportJob.Status.values)
TYPES = ", ".join(ExportJob.Type.values)


class ExportJobListCreateApi(APIView):
    pagination_class = LimitOffsetPage

    class InputSerializer(serializers.Serializer):
        type = serializers.CharField()
        format = serializers.CharField(default="csv")
        date_from = DayField()
        date_to = DayField()
        filters = serializers.DictField(child=serializers.CharField(), required=False)

    @extend_schema(
        operation_id="export_jobs_list",
        parameters=[
            OpenApiParameter("status", str, description=f"only jobs in this status: {STATUSES}"),
            OpenApiParameter("type", str, description=f"only jobs of this type: {TYPES}"),
        ],
        responses=ExportJobOutputSerializer(many=True),
    )
    def get(self, request):
        jobs = export_job_list(
            organization=request.organization,
            status=request.query_params.get("status", ""),
            type=request.query_params.get("type", ""),
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(jobs, request, view=self)
        return paginator.get_paginated_response(ExportJobOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="export_jobs_create",
        request=InputSerializer,
        responses={201: ExportJobOutputSerializer},
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = export_job_create(
            organization=request.organization,
            actor=actor_of(request),
            via=via_of(request),
            **data.validated_data,
        )
        job.refresh_from_db()  # eager mode may have run it already
        return Response(ExportJobOutputSerializer(job).data, status=201)


class ExportJobDetailApi(APIView):
    @extend_schema(operation_id="export_jobs_get", responses=ExportJobOutputSerializer)
    def get(self, request, job_id):
        job = export_job_get(organization=request.organization, job_id=job_id)
        return Response(ExportJobOutputSerializer(job).data)


class ExportJobManifestApi(APIView):
    @extend_schema(operation_id="export_jobs_manifest", responses=OpenApiTypes.OBJECT)
    def get(self, request, job_id):
        job = export_job_get(organization=request.organization, job_id=job_id)
        return Response(job.manifest)


class ExportJobDownloadApi(APIView):
    """Streams the file (FileResponse reads it in blocks); 409 until the job is completed."""

    @extend_schema(
        operation_id="export_jobs_download",
        responses={
            (200, "*/*"): OpenApiTypes.BINARY,
            409: conflict("the job is not completed (yet): download it once it is"),
        },
    )
    def get(self, request, job_id):
        job = export_job_get(organization=request.organization, job_id=job_id)
        handle = export_job_download(job=job, actor=actor_of(request), via=via_of(request))
        response = FileResponse(
            handle,
            as_attachment=True,
            filename=export_file_name(job),
            content_type=CONTENT_TYPES[job.format],
        )
        response["X-Content-SHA256"] = job.manifest.get("file", {}).get("sha256", "")
        return response
