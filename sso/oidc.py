"""The OpenID Connect authorization code flow with PKCE.

The checks are Authlib's: the ID token's signature against the issuer's published keys
(joserfc, Authlib's JOSE library) and its claims (authlib.oidc.core.CodeIDToken: issuer,
audience = our client id, authorized party, nonce, at_hash, expiry, issued-at). State, nonce
and the PKCE verifier are Authlib's random tokens and S256 challenge, kept in this browser's
Django session under the organization's own key, used once.

The three server-side calls (discovery, token, JWKS) go through the project's httpx transport
guarded by the upstream address rules (gateway/egress.py): the issuer is typed by a tenant and
the server fetches from it. Authlib's own HTTP clients are not used: its Django client needs
`requests`, and its httpx client switches to `httpx2` when that is installed (as the test
dependencies do), which the guard does not cover.

On top of the library: the discovery document must name the configured issuer (OpenID Connect
Discovery 1.0, section 4.3), and so must an `iss` on the callback (RFC 9207, mix-up defence).
"""

import logging
import time
from urllib.parse import quote, urlencode

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from chargeback import secretbox
from chargeback.env_refs import env_ref_read
from gateway.egress import guard
from sso.models import SsoConnection

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
STATE_SECONDS = 600  # how long a started sign-in may take at the provider
DISCOVERY_SECONDS = 300  # how long a process keeps a provider's discovery document
LEEWAY_SECONDS = 120  # clock difference tolerated on exp / iat
# Signatures by the provider's published (asymmetric) keys only: never "none", never a key the
# client could have chosen.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]


class SignInFailed(Exception):
    """The flow did not end in verified claims. `reason` is for the person; the log has more."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _http() -> httpx.Client:
    return httpx.Client(
        mounts={
            "http://": guard(httpx.HTTPTransport(), "http"),
            "https://": guard(httpx.HTTPTransport(), "https"),
        },
        timeout=TIMEOUT,
        trust_env=False,  # no proxy from the server's environment in between
    )


def _get_json(http: httpx.Client, url: str) -> dict:
    response = http.get(url, headers={"Accept": "application/json"})
    response.raise_for_status()
    data = response.json()
    if not isinstance(data, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return data


def client_secret_of(connection: SsoConnection) -> str:
    """The client secret, read when needed: a stored secret is decrypted, an environment
    variable read only while the operator still allows it to the organization."""
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


# issuer -> (monotonic expiry, discovery document): every visit of a login URL (anonymous)
# would otherwise make the server fetch it.
_discovered: dict[str, tuple[float, dict]] = {}


def provider_metadata(http: httpx.Client, connection: SsoConnection) -> dict:
    url = connection.issuer.rstrip("/") + "/.well-known/openid-configuration"
    cached = _discovered.get(connection.issuer)
    if cached and cached[0] > time.monotonic():
        metadata = cached[1]
    else:
        try:
            metadata = _get_json(http, url)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("sso: discovery of %s failed: %r", connection.issuer, exc)
            raise SignInFailed("the identity provider could not be reached") from None
        _discovered[connection.issuer] = (time.monotonic() + DISCOVERY_SECONDS, metadata)
    if metadata.get("issuer") != connection.issuer:
        log.warning(
            "sso: %s: the provider publishes issuer %r, configured %r",
            connection.organization.slug,
            metadata.get("issuer"),
            connection.issuer,
        )
        raise SignInFailed("the identity provider's issuer is not the configured one")
    return metadata


def _state_key(connection: SsoConnection, state: str) -> str:
    # One namespace per organization: a flow started for one is unknown to another's callback.
    return f"sso_state_{connection.organization_id}_{state}"


def authorization_url(request, connection: SsoConnection, redirect_uri: str) -> str:
    """Where to send the browser to sign in at the connection's provider."""
    with _http() as http:
        metadata = provider_metadata(http, connection)
    for key in [k for k, v in request.session.items() if k.startswith("sso_state_")]:
        if request.session[key]["expires"] < time.time():  # abandoned sign-ins
            del request.session[key]
    state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
    request.session[_state_key(connection, state)] = {
        "nonce": nonce,
        "verifier": verifier,
        "redirect_uri": redirect_uri,
        "expires": time.time() + STATE_SECONDS,
    }
    query = urlencode(
        {
            "response_type": "code",
            "client_id": connection.client_id,
            "redirect_uri": redirect_uri,
            "scope": connection.scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    endpoint = metadata["authorization_endpoint"]
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def _id_token_claims(http, connection, metadata, token: dict, nonce: str) -> dict:
    keys = KeySet.import_key_set(_get_json(http, metadata["jwks_uri"]))
    offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = [a for a in offered if a in ALGORITHMS]
    decoded = jwt.decode(token["id_token"], keys, algorithms=algorithms)
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        options={"iss": {"essential": True, "values": [connection.issuer]}},
        params={
            "nonce": nonce,
            "client_id": connection.client_id,
            "access_token": token.get("access_token"),
        },
    )
    claims.validate(leeway=LEEWAY_SECONDS)
    return dict(claims)


def verified_claims(request, connection: SsoConnection) -> dict:
    """The callback's ID token claims, verified, or SignInFailed. The state is used once."""
    params = request.GET
    state = params.get("state") or ""
    started = request.session.pop(_state_key(connection, state), None) if state else None
    if params.get("error"):
        log.info("sso: provider answered %s: %s", params["error"], params.get("error_description"))
        raise SignInFailed(f"the identity provider refused: {params['error']}")
    if not started or started["expires"] < time.time():
        raise SignInFailed("this sign-in was not started here, or took too long; start again")
    with _http() as http:
        metadata = provider_metadata(http, connection)
        if params.get("iss") and params["iss"] != metadata["issuer"]:
            raise SignInFailed("the answer came from another identity provider")
        try:
            response = http.post(
                metadata["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": params.get("code") or "",
                    "redirect_uri": started["redirect_uri"],
                    "code_verifier": started["verifier"],
                },
                # RFC 6749 2.3.1: both form-encoded before the Basic scheme (as Authlib does).
                auth=(
                    quote(connection.client_id, safe=""),
                    quote(client_secret_of(connection), safe=""),
                ),
                headers={"Accept": "application/json"},
            )
            if response.status_code != 200:
                log.warning(
                    "sso: %s: token endpoint answered %s %s",
                    connection.organization.slug,
                    response.status_code,
                    response.text[:300],
                )
                raise SignInFailed("the identity provider did not confirm this sign-in")
            token = response.json()
            if not isinstance(token, dict) or "id_token" not in token:
                raise SignInFailed("the identity provider returned no ID token")
            return _id_token_claims(http, connection, metadata, token, started["nonce"])
        except httpx.HTTPError as exc:
            log.warning("sso: %s: provider call failed: %r", connection.organization.slug, exc)
            raise SignInFailed("the identity provider could not be reached") from None
        except (AuthlibBaseError, JoseError, ValueError, KeyError) as exc:
            # a bad signature, an unknown key, another issuer or audience, a wrong nonce, expiry
            log.warning("sso: %s: ID token refused: %r", connection.organization.slug, exc)
            raise SignInFailed("the identity provider's ID token did not verify") from None
