"""Settings come from the environment (django-environ); the defaults are the embedded demo:
SQLite, Celery eager (demo_run: a worker on an embedded broker), local-memory cache, console email."""

import warnings
from datetime import timedelta
from pathlib import Path

import environ

from portal.settings_checks import fernet_keys_or_fail, networks_or_fail

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    if not env.bool("KT_EMBEDDED", default=True):
        raise environ.ImproperlyConfigured("SECRET_KEY must be set outside the embedded demo")
    # The embedded demo only: never used when KT_EMBEDDED=false (production).
    SECRET_KEY = "embedded-demo-only-not-secret"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env("SITE_URL", default="http://localhost:41002")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # ReDoc and Swagger UI served from our static files, no CDN
    "import_export",
    "axes",  # login lockouts (the security section below)
    "chargeback",
    "wallets",
    "gateway",
    "alert_channels",  # Slack and webhooks (budgets publishes to it), docs/operations.md
    "budgets",
    "reports",
    "observability",  # probes, /metrics, traces (docs/operations.md)
    "sso",  # single sign-on (OpenID Connect), docs/operations.md "Single sign-on"
    "demo",
]

MIDDLEWARE = [
    "observability.middleware.OpsEndpointsMiddleware",  # /healthz, /readyz, /metrics: before all
    "gateway.middleware.GatewayShortcutMiddleware",  # first: the gateway skips the rest
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.security.ContentSecurityPolicyMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into its page
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})
    # One pool per process; the gateway's short transactions borrow a connection and return it.
    DATABASES["default"]["OPTIONS"].setdefault(
        "pool",
        {
            "min_size": 1,
            "max_size": env.int("DB_POOL_MAX", default=8),
            # How long a request waits for a pooled connection (e.g. while PostgreSQL restarts)
            # before it fails: a 503 before the provider call, a retried capture after it.
            "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
        },
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Let psycopg prepare a statement it runs repeatedly on a connection. Only the gateway's
    # fast path binds server-side (the ORM quotes client-side and is never prepared); its two
    # statements are otherwise parsed again on every request. None behind a transaction-mode
    # pooler such as pgbouncer (DB_PREPARE_THRESHOLD=none).
    _prepare = env("DB_PREPARE_THRESHOLD", default="5")
    DATABASES["default"]["OPTIONS"].setdefault(
        "prepare_threshold", None if _prepare.lower() == "none" else int(_prepare)
    )
else:
    DATABASES["default"].setdefault("OPTIONS", {})
    # SQLite: wait for the writer instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # The gateway's rate limits read the cache on the request path: a Redis that is down
            # or stalled must cost a request a fraction of a second, not the kernel's TCP
            # timeouts (gateway/ratelimit.py, docs/operations.md).
            "OPTIONS": {
                "socket_connect_timeout": env.float("KT_CACHE_CONNECT_TIMEOUT", default=0.5),
                "socket_timeout": env.float("KT_CACHE_TIMEOUT", default=0.5),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = env("MEDIA_ROOT", default=str(BASE_DIR / "media"))
MEDIA_URL = "media/"
STORAGES = {
    "default": {
        "BACKEND": env(
            "DEFAULT_FILE_STORAGE", default="django.core.files.storage.FileSystemStorage"
        )
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# Served from the finders until `collectstatic` has filled STATIC_ROOT (the demo and tests).
warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
WHITENOISE_AUTOREFRESH = DEBUG

EMAIL_CONFIG = env.email("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="chargeback@localhost")

LOGIN_URL = "/admin/login/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["chargeback.auth.AdminTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["chargeback.auth.HasOrganization"],
    "DEFAULT_THROTTLE_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "chargeback.pagination.LimitOffsetPage",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "chargeback.errors.api_exception_handler",
    # the shared error responses of every management operation (chargeback/openapi.py)
    "DEFAULT_SCHEMA_CLASS": "chargeback.openapi.ManagementAutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AI spend chargeback API",
    "DESCRIPTION": "Management API (wallets, budgets, export jobs) and the OpenAI-compatible gateway.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# Celery: without REDIS_URL tasks run eagerly in-process (the embedded demo).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 600
CELERY_TASK_SOFT_TIME_LIMIT = 540
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
# Each area appends its periodic tasks: CELERY_BEAT_SCHEDULE["name"] = {...}
CELERY_BEAT_SCHEDULE = {}

# Gateway
KT_HOLD_TTL_SECONDS = env.int("KT_HOLD_TTL_SECONDS", default=900)
KT_MAX_BODY_BYTES = env.int("KT_MAX_BODY_BYTES", default=4 * 1024 * 1024)
KT_KEY_CACHE_SECONDS = env.int("KT_KEY_CACHE_SECONDS", default=5)
KT_UPSTREAM_CONNECT_TIMEOUT = env.float("KT_UPSTREAM_CONNECT_TIMEOUT", default=5.0)
KT_UPSTREAM_READ_TIMEOUT = env.float("KT_UPSTREAM_READ_TIMEOUT", default=120.0)
KT_FAKE_PROVIDER_URL = env("KT_FAKE_PROVIDER_URL", default="")
KT_EXPORT_MAX_DAYS = env.int("KT_EXPORT_MAX_DAYS", default=366)
KT_RECONCILE_TOLERANCE_PERCENT = env.float("KT_RECONCILE_TOLERANCE_PERCENT", default=2.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- budgets ---
# Hourly: re-evaluate every budget and wallet, send forecast alerts, re-send failed emails.
# Periods roll over by themselves (alerts are keyed by period start), so no rollover task.
CELERY_BEAT_SCHEDULE["budgets-evaluate-hourly"] = {
    "task": "budgets.evaluate_all",
    "schedule": env.float("KT_BUDGET_EVALUATE_SECONDS", default=3600.0),
}
# No forecast alert before this many days of the period have elapsed (too little data).
KT_BUDGET_FORECAST_MIN_DAYS = env.float("KT_BUDGET_FORECAST_MIN_DAYS", default=3.0)
# The per-request budget check sums only recent events on top of a cached base (see
# budgets/selectors.py budget_spend_fast): refresh interval and how far back it re-sums.
KT_BUDGET_SPEND_REFRESH_SECONDS = env.int("KT_BUDGET_SPEND_REFRESH_SECONDS", default=60)
KT_BUDGET_SPEND_MARGIN_SECONDS = env.int(
    "KT_BUDGET_SPEND_MARGIN_SECONDS", default=KT_HOLD_TTL_SECONDS + 60
)
# The per-request hook checks a department at most once per this many seconds, after the
# window closes (budgets/alerts.py); 0 checks after every request.
KT_BUDGET_CHECK_SECONDS = env.int("KT_BUDGET_CHECK_SECONDS", default=5)
# Bound every SMTP conversation (alert sends hold a row lock while talking to the server).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)

# After a consumer-group key rotation the old key keeps working this long (seconds).
KT_KEY_ROTATION_GRACE_SECONDS = env.int("KT_KEY_ROTATION_GRACE_SECONDS", default=3600)

# --- gateway ---
# Where the gateway may connect (chargeback/upstream.py; docs/configuration.md "Upstream addresses"):
# https to public addresses only, unless the operator allows a host (`host` or `host:port`,
# any scheme and address), a network (CIDR) or plain http. KT_FAKE_PROVIDER_URL is allowed.
KT_UPSTREAM_ALLOW_HOSTS = env.list("KT_UPSTREAM_ALLOW_HOSTS", default=[])
KT_UPSTREAM_ALLOW_NETWORKS = env.list("KT_UPSTREAM_ALLOW_NETWORKS", default=[])
KT_UPSTREAM_ALLOW_HTTP = env.bool("KT_UPSTREAM_ALLOW_HTTP", default=False)
networks_or_fail(KT_UPSTREAM_ALLOW_NETWORKS)
# Fernet key(s) that encrypt the organizations' stored provider secrets (chargeback/secretbox.py):
# comma-separated, the first encrypts, all decrypt. Empty: secrets can be neither stored nor used.
KT_SECRETS_KEY = env("KT_SECRETS_KEY", default="")
fernet_keys_or_fail(KT_SECRETS_KEY)
# httpx logs every upstream request at INFO: noise, and CPU on the gateway's hot path.
LOGGING["loggers"]["httpx"] = {"level": "WARNING"}
# Holds left pending by a killed process are released and recorded (status "expired").
CELERY_BEAT_SCHEDULE["gateway-sweep-expired-holds"] = {
    "task": "gateway.tasks.sweep_expired_holds",
    "schedule": env.float("KT_HOLD_SWEEP_SECONDS", default=60.0),
}
# The daily spend rollups' deltas folded into their days (gateway/rollups.py).
CELERY_BEAT_SCHEDULE["gateway-fold-spend-rollups"] = {
    "task": "gateway.tasks.fold_spend_rollups",
    "schedule": env.float("KT_SPEND_ROLLUP_FOLD_SECONDS", default=60.0),
}

# --- exports ---
# The previous month's chargeback and events exports for every organization: hourly on the 1st
# and 2nd (UTC) so that each time zone is served after its own midnight; idempotent.
from celery.schedules import crontab  # noqa: E402

CELERY_BEAT_SCHEDULE["exports-monthly"] = {
    "task": "reports.export_jobs_monthly",
    "schedule": crontab(minute=20, day_of_month="1,2"),
}

# --- security (docs/configuration.md, "Security") ---
# HTTPS settings follow SITE_URL's scheme: a site served over https gets Secure cookies, HSTS
# and the redirect to https by default; the demo (http://localhost) gets none of them.
KT_HTTPS = SITE_URL.lower().startswith("https://")
# Reverse proxies in front of the web process (the docker-compose nginx is one). With one or
# more, the scheme comes from X-Forwarded-Proto and the client address from X-Forwarded-For
# (that many entries from its right); the proxy must set both, overwriting what clients send.
KT_TRUSTED_PROXIES = env.int("KT_TRUSTED_PROXIES", default=0)
if KT_TRUSTED_PROXIES > 0:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=KT_HTTPS)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=KT_HTTPS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=KT_HTTPS)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if KT_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=KT_HTTPS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Preloading puts the domain on browsers' built-in HTTPS list, a decision for the domain's
# owner (SECURE_HSTS_PRELOAD=true), not a default; `check --deploy` would otherwise ask for it.
SILENCED_SYSTEM_CHECKS = [
    "security.W021",
    # SQLite (the embedded demo) builds the ledger's covering indexes and the rollups' unique
    # key without INCLUDE / NULLS NOT DISTINCT; PostgreSQL, where they matter, has both.
    "models.W040",
    "models.W047",
]
# The portal's pages: scripts, styles and images from this site only, never framed
# (portal/security.py; the gateway's responses are JSON and skip it). /api/docs/ renders
# Redoc (served from here, drf-spectacular-sidecar) with inline code: KT_CSP_API_DOCS.
# The hashes allow exactly the one event handler and two style attributes of
# django-import-export's export page (admin/import_export/export.html), nothing else inline.
KT_CSP = env(
    "KT_CSP",
    default="default-src 'self'; "
    "script-src 'self' 'unsafe-hashes' 'sha256-wid4zL8fR53ZYy1ljOepzR77Dn6vWUUxuNnnWWBP3I8='; "
    "style-src 'self' 'unsafe-hashes' 'sha256-mHgUAqxc8GPXM/QhzkHrHujcrQTU9fd6ZjWz+icxKcA=' "
    "'sha256-+YWRMZ88jMyO7jVlBA52tZADiPobPIUA8LAWee68Fvs='; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
KT_CSP_API_DOCS = env(
    "KT_CSP_API_DOCS",
    default="default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; font-src 'self'; img-src 'self' data:; "
    "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "frame-ancestors 'none'",
)
# /api/schema/ and /api/docs/: public, or only for a staff session or an admin token.
KT_API_SCHEMA_PUBLIC = env.bool(
    "KT_API_SCHEMA_PUBLIC", default=env.bool("KT_EMBEDDED", default=True)
)

# Login lockouts (django-axes) on the one login form (/admin/login/, which the dashboards use
# too): after KT_LOGIN_FAILURE_LIMIT failed sign-ins for one username, or from one client
# address, that username or address is refused for KT_LOGIN_LOCKOUT_MINUTES, the right password
# included. Attempts are rows in the database (shared by every process; an admin can delete
# them to unlock early, or `manage.py axes_reset`).
AUTHENTICATION_BACKENDS = [
    "portal.security.LoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("KT_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("KT_LOGIN_LOCKOUT_MINUTES", default=15))
# username or address, either one locks; a single sign-on sign-in neither counts nor resets
AXES_LOCKOUT_PARAMETERS = "portal.security.lockout_parameters"
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "portal.security.client_ip"
AXES_LOCKOUT_CALLABLE = "portal.security.lockout_response"
AXES_VERBOSE = False

# Captures kept in the outbox while the database was away (portal/settings_gateway.py).
CELERY_BEAT_SCHEDULE["gateway-replay-capture-outbox"] = {
    "task": "gateway.tasks.replay_capture_outbox",
    "schedule": 60.0,
}

# --- broker and rate-limit store outages (docs/operations.md, docs/reliability.md) ---
# Celery retries the broker forever, at start-up too: its default gives up after 100 attempts
# (about 47 minutes) and the worker exits, leaving no sweeper, alerts or exports behind.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A message a worker took and never acknowledged (the worker was killed, or Redis restarted
    # while the worker held it) is delivered again after this many seconds. Keep it above the
    # longest a message is held: a retry countdown (up to 600 s) plus the hard time limit (600 s).
    "visibility_timeout": env.int("KT_BROKER_VISIBILITY_TIMEOUT", default=3600),
    # Bounded waits: a web process that enqueues a task while Redis is unreachable gives up
    # within seconds (its caller logs it) instead of hanging on the kernel's TCP timeouts.
    "socket_connect_timeout": 1,
    "socket_timeout": 3,
    "socket_keepalive": True,
    # Idle connections are pinged, so a dead one is replaced before a command needs it.
    "health_check_interval": 10,
}
# A publish retries once, at once: a web request that enqueues while Redis hangs waits at most
# two socket timeouts; one that finds it refusing connections fails in milliseconds.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Tasks running when the broker connection drops finish: every task is idempotent by its rows,
# so the redelivery finds the work done, where cancelling could repeat a half-done side effect.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False

# The gateway's own settings (pricing, upstream pool, rate-limit store, capture outbox, response
# cache, routing policies, cost tickets), the operations' (probes, metrics, traces, sessions), a
# read replica for reports, and the embedded default's worker and broker.
from portal.settings_embedded import KT_EMBEDDED_BROKER_DIR, embedded_celery  # noqa: E402
from portal.settings_gateway import *  # noqa: E402,F403
from portal.settings_ops import *  # noqa: E402,F403
from portal.settings_replica import *  # noqa: E402,F403

CELERY_BEAT_SCHEDULE.update(OPS_BEAT_SCHEDULE)  # noqa: F405
replica_configure(DATABASES)  # noqa: F405
if KT_EMBEDDED_BROKER_DIR:  # demo_run: a real worker and beat on a broker kept in files
    vars().update(embedded_celery(KT_EMBEDDED_BROKER_DIR))
