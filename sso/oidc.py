"""The OpenID Connect protocol, done by Authlib: the authorization code flow with PKCE, state and
nonce kept in the Django session, the code exchanged with the client secret, the ID token's
signature checked against the issuer's published keys (jwks_uri) and its issuer, audience,
nonce and expiry validated (authlib.oidc.core.CodeIDToken).

Authlib's Django client speaks `requests`; this project's HTTP client is httpx, whose connections
go through the upstream address rules (gateway/egress.py: the issuer is typed by a tenant, and
the server fetches from it), so the app is put together from Authlib's framework-neutral
parts with its httpx client. What this module adds on top: the provider's discovery document
must name the configured issuer (OpenID Connect Discovery 1.0, section 4.3), and an `iss` on
the callback (RFC 9207) must too.
"""

import logging
import warnings

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import (
    BaseApp,
    FrameworkIntegration,
    OAuth2Mixin,
    OAuthError,
    OpenIDMixin,
)

from joserfc.errors import JoseError

from chargeback import secretbox
from chargeback.env_refs import env_ref_read
from gateway.egress import guard
from sso.models import SsoConnection

with warnings.catch_warnings():
    # Authlib announces that it prefers the `httpx2` fork; httpx is the client this project
    # pins and guards, and Authlib supports it.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# How long a started sign-in may take at the provider (state, nonce and PKCE verifier).
STATE_SECONDS = 600


class SignInFailed(Exception):
    """The flow did not end in verified claims. `reason` is for the person; the log has more."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class GuardedClient(OAuth2Client):
    """Authlib's httpx client whose every connection obeys the upstream address rules."""

    def __init__(self, *args, **kwargs):
        kwargs["mounts"] = {
            "http://": guard(httpx.HTTPTransport(), "http"),
            "https://": guard(httpx.HTTPTransport(), "https"),
        }
        kwargs["timeout"] = TIMEOUT
        kwargs["trust_env"] = False  # no proxy of the server's environment in between
        super().__init__(*args, **kwargs)


class SessionState(FrameworkIntegration):
    """Authlib's state store on the Django session (as its Django client does)."""

    expires_in = STATE_SECONDS

    def update_token(self, token, refresh_token=None, access_token=None):
        pass  # tokens are used once, at sign-in, and not kept

    @staticmethod
    def load_config(oauth, name, params):
        return None


class OidcApp(OAuth2Mixin, OpenIDMixin, BaseApp):
    client_cls = GuardedClient


def client_secret_of(connection: SsoConnection) -> str:
    """The client secret, read when needed: a stored secret is decrypted, an environment
    variable read only if the operator still allows it to the organization."""
    if connection.client_secret_id:
        secret = connection.client_secret
        return secretbox.unseal_cached(
            token=secret.ciphertext, organization_id=secret.organization_id, name=secret.name
        )
    return env_ref_read(
        organization=connection.organization,
        name=connection.client_secret_env,
        field="client_secret_env",
    )


def oidc_app(connection: SsoConnection) -> OidcApp:
    # One state namespace per organization: a flow started for one is unknown to another's.
    return OidcApp(
        SessionState(f"sso{connection.organization_id}"),
        name=f"sso{connection.organization_id}",
        client_id=connection.client_id,
        client_secret=client_secret_of(connection),
        server_metadata_url=connection.issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={
            "scope": connection.scopes,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
        },
    )


def _metadata(app: OidcApp, connection: SsoConnection) -> dict:
    try:
        metadata = app.load_server_metadata()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("sso: discovery of %s failed: %r", connection.issuer, exc)
        raise SignInFailed("the identity provider could not be reached") from None
    if metadata.get("issuer") != connection.issuer:
        log.warning(
            "sso: %s publishes issuer %r, configured %r",
            connection.organization.slug,
            metadata.get("issuer"),
            connection.issuer,
        )
        raise SignInFailed("the identity provider's issuer is not the configured one")
    return metadata


def authorization_url(request, connection: SsoConnection, redirect_uri: str) -> str:
    """Where to send the browser; state, nonce and the PKCE verifier stay in its session."""
    app = oidc_app(connection)
    _metadata(app, connection)
    found = app.create_authorization_url(redirect_uri)
    app.framework.set_state_data(
        request.session,
        found["state"],
        {"redirect_uri": redirect_uri, "nonce": found["nonce"], **_verifier(found)},
    )
    return found["url"]


def _verifier(found: dict) -> dict:
    return {"code_verifier": found["code_verifier"]} if "code_verifier" in found else {}


def verified_claims(request, connection: SsoConnection) -> dict:
    """The callback's claims, verified, or SignInFailed. The state is used once."""
    params = request.GET
    if params.get("error"):
        log.info("sso: provider answered %s: %s", params["error"], params.get("error_description"))
        raise SignInFailed(f"the identity provider refused: {params['error']}")
    app = oidc_app(connection)
    state = params.get("state") or ""
    data = app.framework.get_state_data(request.session, state)
    app.framework.clear_state_data(request.session, state)
    if not data or not data.get("nonce"):
        raise SignInFailed("this sign-in was not started here, or took too long; start again")
    metadata = _metadata(app, connection)
    if params.get("iss") and params["iss"] != metadata["issuer"]:
        raise SignInFailed("the answer came from another identity provider")
    try:
        token = app.fetch_access_token(
            redirect_uri=data["redirect_uri"],
            code=params.get("code") or "",
            **({"code_verifier": data["code_verifier"]} if data.get("code_verifier") else {}),
        )
        if "id_token" not in token:
            raise SignInFailed("the identity provider returned no ID token")
        claims = dict(app.parse_id_token(token, nonce=data["nonce"]))
    except SignInFailed:
        raise
    except (OAuthError, httpx.HTTPError) as exc:
        log.warning("sso: code exchange for %s failed: %r", connection.organization.slug, exc)
        raise SignInFailed("the identity provider did not confirm this sign-in") from None
    except (AuthlibBaseError, JoseError, ValueError, KeyError) as exc:
        # a bad signature, an unknown key, another issuer or audience, a replayed nonce, expiry
        log.warning("sso: ID token for %s refused: %r", connection.organization.slug, exc)
        raise SignInFailed("the identity provider's ID token did not verify") from None
    return claims
