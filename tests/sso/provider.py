"""A real OpenID Connect provider for the tests: node-oidc-provider (tests/sso/op/, installed
from its package-lock.json by `make sso-op-deps`, never at test time) run by the machine's
Node.js on a free loopback port.

Its people and the portal's two organizations, as a shared company IdP would have them (one
issuer, one client per organization; the `org` claim says whose employee a person is):
"""

import json
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from tests.ports import free_port

OP_DIR = Path(__file__).resolve().parent / "op"
PASSWORD = "idp-password-1"

ACCOUNTS = {
    # Acme: finance, a budget owner of support, someone in no mapped group, an admin.
    "alice": {"email": "alice@acme.example", "groups": ["kt-finance", "everyone"], "org": "acme"},
    "bob": {"email": "bob@acme.example", "groups": ["support-leads"], "org": "acme"},
    "carol": {"email": "carol@acme.example", "groups": ["everyone"], "org": "acme"},
    # Globex's finance lead, an employee of the other organization at the same provider.
    "gina": {"email": "gina@globex.example", "groups": ["kt-finance"], "org": "globex"},
    # Claims the e-mail of Acme's break-glass account: must never become it.
    "mallory": {"email": "breakglass@acme.example", "groups": ["kt-finance"], "org": "acme"},
}
CLIENTS = {"acme": "acme-portal", "globex": "globex-portal"}


def client_secret(slug: str) -> str:
    return f"{slug}-client-secret-0123456789"


@dataclass
class Provider:
    issuer: str
    process: subprocess.Popen
    output: list = field(default_factory=list)

    @property
    def host_port(self) -> str:
        return urlsplit(self.issuer).netloc

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_provider(tmp: Path, redirect_bases: list[str]) -> Provider:
    """Start the provider with clients whose redirect URIs are
    `<base>/sso/<organization>/callback/` for each base; returns once it listens."""
    node = shutil.which("node")
    assert node, "Node.js is not installed (make test installs it)"
    assert (OP_DIR / "node_modules" / "oidc-provider").is_dir(), (
        "the test identity provider is not installed: run `make sso-op-deps`"
    )
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    config = {
        "issuer": issuer,
        "port": port,
        "cookie_prefix": f"op{port}",
        "clients": [
            {
                "client_id": client_id,
                "client_secret": client_secret(slug),
                "redirect_uris": [f"{base}/sso/{slug}/callback/" for base in redirect_bases],
            }
            for slug, client_id in CLIENTS.items()
        ],
        "accounts": {
            login: {"password": PASSWORD, "claims": {"email_verified": True, **claims}}
            for login, claims in ACCOUNTS.items()
        },
    }
    path = tmp / f"op-{port}.json"
    path.write_text(json.dumps(config))
    process = subprocess.Popen(
        [node, str(OP_DIR / "server.mjs"), str(path)],
        cwd=OP_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    provider = Provider(issuer=issuer, process=process)
    ready = threading.Event()

    def read():
        for line in process.stdout:
            provider.output.append(line)
            if line.startswith("listening "):
                ready.set()
        ready.set()  # exited

    threading.Thread(target=read, daemon=True).start()
    assert ready.wait(30), "".join(provider.output)
    assert process.poll() is None, "".join(provider.output)
    return provider


def sign_in_at_provider(authorize_url: str, login: str, password: str = PASSWORD) -> str:
    """What a person does at the provider's page, over HTTP: follow the authorization request to
    the sign-in form, submit it, follow the provider's redirects. Returns the URL the provider
    finally sends the browser to (the portal's callback), not followed."""
    issuer = f"{urlsplit(authorize_url).scheme}://{urlsplit(authorize_url).netloc}"
    with httpx.Client(timeout=10, trust_env=False) as browser:
        response = browser.get(authorize_url)
        while response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if not target.startswith(issuer):
                return target
            response = browser.get(target)
        action = re.search(r'action="([^"]+)"', response.text).group(1)
        response = browser.post(
            urljoin(issuer, action), data={"login": login, "password": password}
        )
        while response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if not target.startswith(issuer):
                return target
            response = browser.get(target)
        raise AssertionError(f"the provider did not send the browser back: {response.text[:300]}")
