"""Single sign-on pages (thin): start a sign-in at an organization's identity provider, and
finish it on the way back. The organization is the one in the URL the flow was started for
(its state lives in this browser's session under that organization only), confirmed by the
provider's signed ID token; whatever fails comes back to the login page with the reason."""

import logging
import re
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from chargeback import secretbox
from chargeback.errors import ApplicationError
from sso.models import SsoConnection
from sso.oidc import SignInFailed, authorization_url, verified_claims
from sso.signin import SignInRefused, sso_sign_in

log = logging.getLogger(__name__)

NEXT_KEY = "sso_next"
SLUG_RE = re.compile(r"^[-a-z0-9_]{1,100}$")
BACKEND = "django.contrib.auth.backends.ModelBackend"


def _connection(slug: str) -> SsoConnection | None:
    return (
        SsoConnection.objects.select_related("organization", "client_secret")
        .filter(organization__slug=slug, enabled=True)
        .first()
    )


def _back_to_login(request, message: str):
    messages.error(request, f"Single sign-on: {message}")
    return redirect(settings.LOGIN_URL)


def _next_of(request, raw: str) -> str:
    if raw and url_has_allowed_host_and_scheme(
        raw, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return raw
    return reverse("admin:index")


@never_cache
@require_POST
def sso_choose(request):
    """The login page's form: the organization's id picks which provider to go to (only
    that: the provider's answer decides who the person is and where they land)."""
    slug = (request.POST.get("organization") or "").strip().lower()
    if not SLUG_RE.match(slug):
        return _back_to_login(request, "type your organization's id")
    url = reverse("sso:login", args=[slug])
    nxt = request.POST.get("next")
    url = f"{url}?{urlencode({'next': nxt})}" if nxt else url
    # Not a redirect: the login page's form-action 'self' would stop the browser at the first
    # redirect to the provider (templates/sso/continue.html).
    return render(request, "sso/continue.html", {"url": url, "title": "Single sign-on"})


def _attempt(request, slug: str, step):
    """`step(connection)` for the organization's enabled connection, or (None, the way back to
    the login page with the reason)."""
    connection = _connection(slug)
    if connection is None:
        # The same answer for an unknown organization and one without single sign-on.
        return None, _back_to_login(request, "that organization does not use single sign-on here")
    try:
        return step(connection), None
    except SignInFailed as exc:
        reason = exc.reason
    except SignInRefused as exc:
        reason = exc.message
    except (ApplicationError, secretbox.SecretUnreadable) as exc:
        # The connection's secret or the account's membership: the operator's or owner's to fix.
        log.error("sso: %s: %s", slug, exc)
        reason = "this organization's single sign-on is not usable; tell its owner"
    return None, _back_to_login(request, reason)


@never_cache
@require_GET
def sso_login(request, slug: str):
    redirect_uri = request.build_absolute_uri(reverse("sso:callback", args=[slug]))
    url, failed = _attempt(
        request, slug, lambda connection: authorization_url(request, connection, redirect_uri)
    )
    if failed:
        return failed
    request.session[NEXT_KEY] = _next_of(request, request.GET.get("next", ""))
    return HttpResponseRedirect(url)


@never_cache
@require_GET
def sso_callback(request, slug: str):
    user, failed = _attempt(
        request,
        slug,
        lambda connection: sso_sign_in(
            connection=connection, claims=verified_claims(request, connection)
        ),
    )
    if failed:
        return failed
    nxt = request.session.pop(NEXT_KEY, None) or reverse("admin:index")
    request.kt_sso_sign_in = True  # not a password sign-in (portal.security.lockout_parameters)
    login(request, user, backend=BACKEND)  # a new session key: nothing of the anonymous one
    return HttpResponseRedirect(nxt)
