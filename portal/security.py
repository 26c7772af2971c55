"""The portal's HTTP hardening that settings alone do not give: the Content-Security-Policy
header, and which address a request comes from when reverse proxies stand in front."""

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib import admin
from django.shortcuts import render


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or with KT_TRUSTED_PROXIES = n the n-th address of
    X-Forwarded-For from its right (each trusted proxy appends the address it saw; anything to
    the left of that came from the client and proves nothing). Login lockouts count per this
    address, so behind a proxy that is not declared every client would share the proxy's."""
    remote = request.META.get("REMOTE_ADDR", "")
    hops = settings.KT_TRUSTED_PROXIES
    if hops <= 0:
        return remote
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [a for a in forwarded if a]
    if len(forwarded) < hops:  # not through every proxy: the nearest peer is all we know
        return remote
    return forwarded[-hops]


class ContentSecurityPolicyMiddleware:
    """Adds KT_CSP to every response of the portal (admin, dashboards, management API) that
    has none; /api/docs/ gets KT_CSP_API_DOCS. Gateway requests never reach this middleware
    (gateway.middleware answers them first)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            docs = request.path_info.startswith("/api/docs/")
            response["Content-Security-Policy"] = (
                settings.KT_CSP_API_DOCS if docs else settings.KT_CSP
            )
        return response


def lockout_response(request, original_response=None, credentials=None):
    """The page a locked-out sign-in gets (django-axes calls it): 429, when to try again, and
    nothing that tells whether the username exists."""
    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    context = {**admin.site.each_context(request), "title": "Sign-in locked", "minutes": minutes}
    response = render(request, "admin/locked_out.html", context, status=429)
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response


PASSWORD_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one locks


def lockout_parameters(request_or_attempt, credentials=None):
    """AXES_LOCKOUT_PARAMETERS. A single sign-on sign-in (sso/views.py marks it) is no password
    attempt: it must not reset the password failures of its address either, or anyone able to
    sign in at some organization's provider could unlock, from a locked address, a username
    that was being guessed from there."""
    if getattr(request_or_attempt, "kt_sso_sign_in", False):
        return []
    return PASSWORD_LOCKOUT_PARAMETERS


class LoginLockoutBackend(AxesStandaloneBackend):
    """django-axes' check, for sign-ins that come with a request (the login form always does).
    `authenticate()` called by code without one (a shell, a test client's login) is not an HTTP
    sign-in: nothing to count, and axes itself would refuse it outright."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
