from django.urls import path
from django.views.generic import RedirectView

from reports.dashboards import views
from reports.spend_api import SpendApi

urlpatterns = [
    path("", RedirectView.as_view(url="/dashboard/", permanent=False), name="home"),
    path("dashboard/", views.overview, name="dashboard-overview"),
    path("dashboard/departments/<slug:team_id>/", views.department, name="dashboard-department"),
    path("v1/spend", SpendApi.as_view(), name="spend"),
]
