from django.urls import path

from reports.apis import (
    ExportJobDetailApi,
    ExportJobDownloadApi,
    ExportJobListCreateApi,
    ExportJobManifestApi,
)

urlpatterns = [
    path("export-jobs", ExportJobListCreateApi.as_view(), name="export-job-list"),
    path("export-jobs/<str:job_id>", ExportJobDetailApi.as_view(), name="export-job-detail"),
    path(
        "export-jobs/<str:job_id>/download",
        ExportJobDownloadApi.as_view(),
        name="export-job-download",
    ),
    path(
        "export-jobs/<str:job_id>/manifest",
        ExportJobManifestApi.as_view(),
        name="export-job-manifest",
    ),
]
