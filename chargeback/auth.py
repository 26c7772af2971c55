"""Management API authentication: `Authorization: Bearer <admin token>`, resolved to its
organization. The request's user is None; `request.auth` is the AdminToken."""

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from chargeback.keys import hash_key
from chargeback.models import AdminToken


def bearer_token(request) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return token.strip()


class AdminTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        raw = bearer_token(request)
        if not raw:
            return None
        token = (
            AdminToken.objects.select_related("organization")
            .filter(token_hash=hash_key(raw), is_active=True)
            .first()
        )
        if token is None:
            raise exceptions.AuthenticationFailed("invalid admin token")
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            AdminToken.objects.filter(pk=token.pk).update(last_used_at=now)
        request.organization = token.organization
        return (None, token)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class HasOrganization(BasePermission):
    """Every management endpoint needs a valid admin token (so its organization)."""

    def has_permission(self, request, view):
        return isinstance(request.auth, AdminToken)


CLIENT_HEADER = "X-KT-Client"  # sent by `kt` on every request (kt/client.py)


def via_of(request) -> str:
    """How a management-API change was made, for the audit log: `cli` when `kt` sent it."""
    return "cli" if request.headers.get(CLIENT_HEADER, "").startswith("kt/") else "api"


def actor_of(request) -> str:
    token = getattr(request, "auth", None)
    if isinstance(token, AdminToken):
        return f"token:{token.token_prefix}"
    user = getattr(request, "user", None)
    return f"user:{user.get_username()}" if user and user.is_authenticated else "anonymous"


class AdminTokenScheme(OpenApiAuthenticationExtension):
    """Documents `Authorization: Bearer <admin token>` in /api/docs/ (defining it registers it)."""

    target_class = "chargeback.auth.AdminTokenAuthentication"
    name = "AdminToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "an organization's admin token (kt_admin_...)",
        }
