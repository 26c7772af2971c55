from django.contrib import admin  # noqa: F401

from reports import admin_exports  # noqa: F401 (registers the ExportJob admin)
