"""The embedded demo behind `make run`: set-up (callable on its own, and tested) and serving.

Set-up is idempotent: it migrates, creates the organization "Acme Corp" (slug `acme`), the
DEMO ONLY admin token `kt_admin_prod_token` and admin login, allows the organization to name
OPENAI_API_KEY and ANTHROPIC_API_KEY (the operator's allow-list), applies `examples/keeptrusts.yaml`
(the seed's file) plus an `anthropic` target, so that Claude models are served too (by the
built-in fake provider while ANTHROPIC_API_KEY is not set), simulates April and May 2026
(demo/seed.py) and the months since, through today (demo/recent.py).
"""

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction

from chargeback.config import ConfigReport, config_apply
from chargeback.env_refs import organization_env_refs_set
from chargeback.keys import hash_key
from chargeback.models import AdminToken, Membership, Organization
from chargeback.services import admin_token_create, organization_get_or_create
from demo.recent import demo_recent
from demo.seed import demo_seed

DEMO_ORG_SLUG = "acme"
DEMO_ORG_NAME = "Acme Corp"
DEMO_ADMIN_TOKEN = "kt_admin_prod_token"  # the seed's curl uses it verbatim: DEMO ONLY
DEMO_ADMIN_USER = "admin"
CONFIG_FILE = Path(settings.BASE_DIR) / "examples" / "keeptrusts.yaml"
ACTOR = "system:demo_run"
DEMO_ENV_REFS = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"]
# Half of the seed's spend is on Claude models: the demo serves them with a second target, added
# to the seed's file (which names only OpenAI) rather than edited into it.
ANTHROPIC_TARGET = """    - id: anthropic
      provider: anthropic
      secret_key_ref:
        env: ANTHROPIC_API_KEY
"""


def demo_config_text() -> str:
    """The seed's file with the demo's `anthropic` target after its `openai` one."""
    text = CONFIG_FILE.read_text(encoding="utf-8")
    head, sep, rest = text.partition("consumer_groups:")
    if not sep or "providers:" not in head:
        raise RuntimeError(f"{CONFIG_FILE}: expected a providers section before consumer_groups")
    return head + ANTHROPIC_TARGET + sep + rest


@dataclass
class DemoInfo:
    organization: Organization
    admin_username: str
    admin_password: str
    admin_token: str
    config_report: ConfigReport
    seeded: bool


def demo_setup(
    *, migrate: bool = True, admin_password: str | None = None, seed: bool = True, log=None
) -> DemoInfo:
    """Bring the demo database to its known state; safe to run again on every start."""
    log = log or (lambda message: None)
    # WhiteNoise serves static files through the finders (WHITENOISE_USE_FINDERS); an existing
    # STATIC_ROOT spares each worker a warning and the demo a slow collectstatic on every start.
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    if migrate:
        log("migrating the database")
        call_command("migrate", interactive=False, verbosity=0)
    with transaction.atomic():
        organization, _ = organization_get_or_create(
            slug=DEMO_ORG_SLUG, name=DEMO_ORG_NAME, actor=ACTOR, via="system"
        )
        if not AdminToken.objects.filter(token_hash=hash_key(DEMO_ADMIN_TOKEN)).exists():
            admin_token_create(
                organization=organization,
                name="demo token (DEMO ONLY)",
                raw=DEMO_ADMIN_TOKEN,
                actor=ACTOR,
                via="system",
            )
        password = admin_password or os.environ.get("KT_DEMO_ADMIN_PASSWORD") or _new_password()
        admin_username = _demo_admin(organization, password)
        # The demo's file names {env: OPENAI_API_KEY} and {env: ANTHROPIC_API_KEY}: the operator
        # (here, the demo) allows those variables for this organization, and nothing else
        # (chargeback/env_refs.py).
        organization_env_refs_set(
            organization=organization, patterns=DEMO_ENV_REFS, actor=ACTOR, via="system"
        )
    log(f"applying {CONFIG_FILE.relative_to(settings.BASE_DIR)} with an anthropic target")
    report = config_apply(
        organization=organization,
        text=demo_config_text(),
        actor=ACTOR,
        via="config",
    )
    for line in report.lines():
        log(f"  {line}")
    seeded = False
    if seed:
        log("simulating April and May 2026 (demo/seed.py)")
        demo_seed(organization_slug=DEMO_ORG_SLUG)  # idempotent: a second start adds nothing
        recent = demo_recent(organization_slug=DEMO_ORG_SLUG)  # June 2026 to today, once each
        if recent["months"]:
            log(f"simulated {', '.join(f'{m:%B %Y}' for m in recent['months'])} (demo/recent.py)")
        seeded = True
    return DemoInfo(
        organization=organization,
        admin_username=admin_username,
        admin_password=password,
        admin_token=DEMO_ADMIN_TOKEN,
        config_report=report,
        seeded=seeded,
    )


def _new_password() -> str:
    # A fresh one on every start, printed once: a fixed demo password would outlive the demo.
    return secrets.token_urlsafe(12)


def _demo_admin(organization: Organization, password: str) -> str:
    """The demo's superuser login (a new password on every start); its username. An account
    that is not the demo's own (another organization's staff, a platform superuser) is never
    taken over: the demo then uses `admin-2`, `admin-3`, ..."""
    User = get_user_model()
    for n in range(1, 100):
        username = DEMO_ADMIN_USER if n == 1 else f"{DEMO_ADMIN_USER}-{n}"
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(username=username)
            break
        if Membership.objects.filter(user=user, organization=organization).exists():
            break
    else:
        raise RuntimeError("no free username for the demo's admin login")
    user.is_staff = True
    user.is_superuser = True
    user.set_password(password)
    user.save()
    Membership.objects.update_or_create(
        user=user, defaults={"organization": organization, "role": Membership.Role.OWNER}
    )
    return username


# --- serving -------------------------------------------------------------------------------------


LOCAL_HOSTS = {"0.0.0.0", "::", "", "127.0.0.1", "::1", "localhost"}  # noqa: S104 - compared


def site_url_follow_port(host: str, port: int) -> str:
    """SITE_URL, the base of the e-mails' links, for the demo served on `port`: unless the
    operator set SITE_URL, http://localhost:<port> (or the host it listens on), here and in the
    server it starts (the environment). `--port 41302` then gets links to 41302, not 41002."""
    if os.environ.get("SITE_URL"):
        return os.environ["SITE_URL"]
    url = f"http://{'localhost' if host in LOCAL_HOSTS else host}:{port}"
    os.environ["SITE_URL"] = url
    settings.SITE_URL = url
    return url


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As gunicorn does: connections of a server just stopped (TIME_WAIT) do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(host: str, port: int, *, timeout: float = 30.0, process=None) -> bool:
    """True once something accepts connections on host:port; False on timeout or if `process`
    exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def start_fake_provider(host: str, port: int, log) -> tuple[str, subprocess.Popen | None]:
    """Start the built-in fake provider in its own process (`manage.py run_fake_provider`);
    return its base URL and the child, or ("", None) when it did not come up."""
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "run_fake_provider", "--port", str(port)],
        cwd=settings.BASE_DIR,
    )
    if not wait_for_port(host, port, timeout=20, process=child):
        child.terminate()
        log("warning: the fake provider did not start; continuing without it")
        return "", None
    return f"http://{host}:{port}", child


def gunicorn_command() -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(Path(settings.BASE_DIR) / "portal" / "gunicorn_conf.py"),
        "portal.wsgi",
    ]


def _provider_line(fake_url: str) -> str:
    if fake_url:
        keys = [name for name in DEMO_ENV_REFS if os.environ.get(name)]
        real = f"; real calls for {', '.join(keys)}" if keys else ""
        return f"built-in fake provider at {fake_url} (OpenAI and Claude models){real}"
    keys = [name for name in DEMO_ENV_REFS if os.environ.get(name)]
    if keys:
        return f"the providers whose keys are set ({', '.join(keys)})"
    return "none: the built-in fake provider did not start (see above)"


def banner(info: DemoInfo, *, port: int, fake_url: str, serving: bool = True) -> str:
    base = f"http://localhost:{port}"
    lines = [
        "",
        "=" * 78,
        f"  {info.organization.name} demo {'is running on' if serving else 'is set up for'} {base}",
        "",
        f"  Dashboard        {base}/",
        f"  Admin            {base}/admin/",
        f"  Admin login      {info.admin_username} / {info.admin_password}   (DEMO ONLY, new on every start)",
        f"  Admin API token  {info.admin_token}   (DEMO ONLY)",
        f"  API docs         {base}/api/docs/",
        f"  Provider         {_provider_line(fake_url)}",
        f"  Simulated May    {'yes' if info.seeded else 'no'}",
        "",
        "  Allocate the wallets (the seed's commands):",
        "",
    ]
    for team, amount, label in [
        ("team_engineering", "20000.00", "Engineering May 2026"),
        ("team_support", "8000.00", "Support May 2026"),
    ]:
        lines += [
            f'curl -s -X POST "{base}/v1/wallets/allocate" \\',
            f'-H "Authorization: Bearer {info.admin_token}" \\',
            '-H "Content-Type: application/json" \\',
            f'-d \'{{"team_id":"{team}","amount":{amount},"currency":"USD","description":"{label}"}}\'',
            "",
        ]
    lines += [
        "  Call the gateway as the engineering department:",
        "",
        f'curl -s "{base}/v1/chat/completions" \\',
        '-H "Authorization: Bearer kt_cg_engineering_prod" \\',
        '-H "Content-Type: application/json" \\',
        '-d \'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}\'',
        "",
        f"  kt:  export KT_URL={base} KT_TOKEN={info.admin_token}",
        "=" * 78,
        "",
    ]
    return "\n".join(lines)
