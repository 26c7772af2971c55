"""The OpenAPI schema (/api/schema/) and its browsable page (/api/docs/): public when
KT_API_SCHEMA_PUBLIC is true (the demo's default), else only for a staff session or an
organization's admin token (production's default: the schema maps every endpoint and field).
The page's ReDoc is served from this project's static files (drf-spectacular-sidecar), so it
works without internet."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, BasePermission

from chargeback.auth import AdminTokenAuthentication
from chargeback.models import AdminToken


def schema_visible(request) -> bool:
    if settings.KT_API_SCHEMA_PUBLIC or isinstance(request.auth, AdminToken):
        return True
    user = request.user
    return bool(user and user.is_active and user.is_staff)


class SchemaAccess(BasePermission):
    def has_permission(self, request, view):
        return schema_visible(request)


class SchemaView(SpectacularAPIView):
    # The token first: without credentials the answer is a 401 naming the Bearer scheme.
    authentication_classes = [AdminTokenAuthentication, SessionAuthentication]
    permission_classes = [SchemaAccess]


class DocsView(SpectacularRedocView):
    """A browser without a staff session is sent to the sign-in page, then back here."""

    authentication_classes = [AdminTokenAuthentication, SessionAuthentication]
    permission_classes = [AllowAny]
    # ReDoc from the sidecar's static files, without the CDN fonts: works offline.
    template_name = "api_docs/redoc.html"

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        if not schema_visible(request):
            return redirect_to_login(request.get_full_path())
        return super().get(request, *args, **kwargs)
