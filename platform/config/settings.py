"""Django settings. Every value comes from `config.env`; see the README's configuration table."""

from __future__ import annotations

import dj_database_url
from django.utils.translation import gettext_lazy as _

from config.env import (
    BASE_DIR,
    VAR_DIR,
    env,
    env_bool,
    env_decimal,
    env_int,
    env_list,
    persistent_secret,
    var_path,
)
from config.web_processes import web_processes_count, web_server

SECRET_KEY = persistent_secret("DJANGO_SECRET_KEY", "secret_key.txt")
# Upstream API keys are encrypted with their own secret so that rotating SECRET_KEY keeps them readable.
UPSTREAM_KEY_SECRET = persistent_secret("UPSTREAM_KEY_SECRET", "upstream_key_secret.txt")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "*")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_NAME = env("SITE_NAME", "Modelgate")
NOTICE = env("NOTICE", "")  # shown on the console's home page and dashboard

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_htmx",
    "config",
    "accounts",
    "billing",
    "tokens",
    "relay",
    "console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/dashboard/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: SQLite under var/ by default, PostgreSQL (psycopg 3) with DATABASE_URL. ---
DATABASE_URL = env("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": var_path("modelgate.sqlite3"),
            "CONN_MAX_AGE": 60,  # the relay's pool threads keep their connection instead of reopening per call
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Daphne processes `manage.py serve` runs on one port; 0: one per core on PostgreSQL, one on SQLite.
WEB_PROCESSES = web_processes_count(env_int("WEB_PROCESSES", 0), database_engine=DATABASES["default"]["ENGINE"])
WEB_SERVER = web_server(env("WEB_SERVER", "daphne"))  # what `manage.py serve` runs: daphne, or uvicorn
ACCESS_LOG = env_bool("ACCESS_LOG", False)  # a line per HTTP request on the web server's output (either server)

# --- Cache, channel layer and Celery broker: Redis with REDIS_URL, in-process / filesystem without. ---
REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}}
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "modelgate"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CELERY_BROKER_URL = "filesystem://"
    _broker_dir = VAR_DIR / "celery" / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE = {
    "upstreams-retest": {"task": "relay.tasks.upstreams_retest_task", "schedule": env_int("UPSTREAM_RETEST_SECONDS", 300)},
    "reservations-sweep": {"task": "relay.tasks.reservations_sweep_task", "schedule": 300},
    "media-tasks-poll": {"task": "relay.tasks.media_tasks_poll_task", "schedule": env_int("TASK_POLL_SECONDS", 15)},
    "usage-logs-prune": {"task": "relay.tasks.usage_logs_prune_task", "schedule": 3600},
    "quota-reminders": {"task": "accounts.tasks.quota_reminders_task", "schedule": 600},
}
# Every enabled upstream tested on a schedule (a one-token request; one that fails is taken out until the retest
# finds it answering), when UPSTREAM_TEST_MINUTES is set.
UPSTREAM_TEST_MINUTES = env_int("UPSTREAM_TEST_MINUTES", 0)
if UPSTREAM_TEST_MINUTES > 0:
    CELERY_BEAT_SCHEDULE["upstreams-test"] = {"task": "relay.tasks.upstreams_test_task",
                                              "schedule": UPSTREAM_TEST_MINUTES * 60}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celery" / "beat-schedule")
CELERY_TIMEZONE = env("TIME_ZONE", "Asia/Shanghai")

# --- Sessions and security ---
# HTTPS_ONLY: browsers reach this site over HTTPS only (TLS ends at Daphne, or at a proxy trusted through
# TRUST_X_FORWARDED_PROTO). It turns on Secure cookies, HSTS and the http -> https redirect. Off by default, so
# `make run` keeps serving plain http on localhost. The redirect is Django's: /healthz, /readyz and /metrics are
# answered by config.asgi before Django (plain http from a load balancer keeps working), and so is the relay.
HTTPS_ONLY = env_bool("HTTPS_ONLY", False)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", HTTPS_ONLY)  # SECURE_COOKIES alone still means cookies only
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = HTTPS_ONLY
SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 31_536_000 if HTTPS_ONLY else 0)  # sent on HTTPS answers only
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", False)
# Both HSTS extensions commit sites this installation knows nothing about (the operator's other subdomains; every
# browser's preload list), so they are the operator's explicit choice and `check --deploy` does not nag about them.
SILENCED_SYSTEM_CHECKS = [check for check, chosen in (("security.W005", SECURE_HSTS_INCLUDE_SUBDOMAINS),
                                                      ("security.W021", SECURE_HSTS_PRELOAD)) if not chosen]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if env_bool("TRUST_X_FORWARDED_PROTO", False):  # behind a TLS-terminating proxy that sets it
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Language and time ---
LANGUAGE_CODE = env("LANGUAGE_CODE", "zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = var_path("staticfiles", ".keep").parent
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- Management API ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.AccessTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.api.JSONParser"],
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Modelgate management API",
    "DESCRIPTION": 'Accounts, API tokens, card keys, upstreams, prices and logs. Every answer is {"success", "message", "data"}.',
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/",
    # Two `status` choice sets meet in the schema: name each after its model instead of a hash suffix.
    "ENUM_NAME_OVERRIDES": {
        "UserStatusEnum": "accounts.models.UserStatus",
        "UpstreamStatusEnum": "relay.models.UpstreamStatus",
    },
}

# --- Product settings ---
QUOTA_PER_USD = 500_000
NEW_USER_QUOTA = env_int("NEW_USER_QUOTA", 500_000)
CHECKIN_QUOTA_MIN = env_int("CHECKIN_QUOTA_MIN", 10_000)
CHECKIN_QUOTA_MAX = env_int("CHECKIN_QUOTA_MAX", 50_000)
REGISTRATION_ENABLED = env_bool("REGISTRATION_ENABLED", True)
# Sign-up needs an email address confirmed with a code sent to it (one account, one trial credit, per address).
EMAIL_VERIFICATION = env_bool("EMAIL_VERIFICATION", False)
EMAIL_DOMAIN_WHITELIST = env_list("EMAIL_DOMAIN_WHITELIST", "")  # accounts' email domains (empty: any)
# Cloudflare Turnstile on sign-up, log-in and verification mails, when both keys are set.
TURNSTILE_SITE_KEY = env("TURNSTILE_SITE_KEY", "")
TURNSTILE_SECRET_KEY = env("TURNSTILE_SECRET_KEY", "")
TURNSTILE_VERIFY_URL = env("TURNSTILE_VERIFY_URL", "https://challenges.cloudflare.com/turnstile/v0/siteverify")
# Sign-in with outside accounts (console "Log in with ..."), each on when its client id and secret are set.
GITHUB_CLIENT_ID = env("GITHUB_CLIENT_ID", "")
GITHUB_CLIENT_SECRET = env("GITHUB_CLIENT_SECRET", "")
GITHUB_OAUTH_URL = env("GITHUB_OAUTH_URL", "https://github.com").rstrip("/")
GITHUB_API_URL = env("GITHUB_API_URL", "https://api.github.com").rstrip("/")
LINUXDO_CLIENT_ID = env("LINUXDO_CLIENT_ID", "")
LINUXDO_CLIENT_SECRET = env("LINUXDO_CLIENT_SECRET", "")
LINUXDO_OAUTH_URL = env("LINUXDO_OAUTH_URL", "https://connect.linux.do").rstrip("/")
LINUXDO_MIN_TRUST_LEVEL = env_int("LINUXDO_MIN_TRUST_LEVEL", 0)
OIDC_CLIENT_ID = env("OIDC_CLIENT_ID", "")
OIDC_CLIENT_SECRET = env("OIDC_CLIENT_SECRET", "")
OIDC_AUTHORIZATION_ENDPOINT = env("OIDC_AUTHORIZATION_ENDPOINT", "")
OIDC_TOKEN_ENDPOINT = env("OIDC_TOKEN_ENDPOINT", "")
OIDC_USERINFO_ENDPOINT = env("OIDC_USERINFO_ENDPOINT", "")
OIDC_LABEL = env("OIDC_LABEL", "OpenID Connect")
TELEGRAM_BOT_NAME = env("TELEGRAM_BOT_NAME", "")  # the Login Widget's bot (its domain set with @BotFather)
TELEGRAM_BOT_TOKEN = env("TELEGRAM_BOT_TOKEN", "")
INVITER_QUOTA = env_int("INVITER_QUOTA", 0)  # credited to whoever invited a new account
INVITEE_QUOTA = env_int("INVITEE_QUOTA", 0)  # credited to the new account, on top of NEW_USER_QUOTA
SENSITIVE_WORDS = env_list("SENSITIVE_WORDS", "")  # prompts holding any of them are refused (empty: no filtering)
QUOTA_REMINDER_THRESHOLD = env_int("QUOTA_REMINDER_THRESHOLD", 0)  # mail users whose balance falls below it (0: off)
SITE_URL = env("SITE_URL", "").rstrip("/")  # the console's public address, for links in mails sent outside a request

# Mail (password-reset links): SMTP when EMAIL_HOST is set, else printed to the server's output.
EMAIL_HOST = env("EMAIL_HOST", "")
EMAIL_BACKEND = ("django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST
                 else "django.core.mail.backends.console.EmailBackend")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", EMAIL_PORT == 587)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", EMAIL_PORT == 465)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", f"{SITE_NAME} <noreply@localhost>")
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_MINUTES", 60) * 60
# Online top-up through an Epay (易支付) gateway: off unless EPAY_URL, EPAY_PID and EPAY_KEY are set.
EPAY_URL = env("EPAY_URL", "")
EPAY_PID = env("EPAY_PID", "")
EPAY_KEY = env("EPAY_KEY", "")
TOPUP_PRICE = env_decimal("TOPUP_PRICE", "7.3")  # what one US dollar of quota costs, in the gateway's currency
TOPUP_CURRENCY = env("TOPUP_CURRENCY", "CNY")
TOPUP_MIN_USD = env_int("TOPUP_MIN_USD", 1)
TOPUP_MAX_USD = env_int("TOPUP_MAX_USD", 10_000)
TOPUP_METHODS = env_list("TOPUP_METHODS", "alipay,wxpay")
# Online top-up by card through Stripe Checkout: off unless both keys are set.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", "")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", "")
STRIPE_PRICE = env_decimal("STRIPE_PRICE", "1")  # what one US dollar of quota costs in STRIPE_CURRENCY
STRIPE_CURRENCY = env("STRIPE_CURRENCY", "usd")
STRIPE_API_URL = env("STRIPE_API_URL", "https://api.stripe.com")
DEFAULT_GROUP = env("DEFAULT_GROUP", "default")
LOG_RETENTION_DAYS = env_int("LOG_RETENTION_DAYS", 7)
DISPLAY_CURRENCY = env("DISPLAY_CURRENCY", "USD")
USD_EXCHANGE_RATE = env_decimal("USD_EXCHANGE_RATE", "7.2")
LOGIN_ATTEMPTS_PER_MINUTE = env_int("LOGIN_ATTEMPTS_PER_MINUTE", 10)
# Proxies whose X-Forwarded-For is believed (the compose reverse proxy, a load balancer).
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", "127.0.0.1/32,::1/128")

# --- Relay ---
RELAY_CACHE_SECONDS = float(env("RELAY_CACHE_SECONDS", "1"))
# While a process has served a call within this long, the cached snapshots and the keys and balances of its most
# recent callers are reloaded before they expire, so a call after a quiet moment does not wait on them (0: never).
RELAY_KEEP_WARM_SECONDS = float(env("RELAY_KEEP_WARM_SECONDS", "120"))
RELAY_KEEP_WARM_KEYS = env_int("RELAY_KEEP_WARM_KEYS", 256)
RELAY_MAX_BODY_BYTES = env_int("RELAY_MAX_BODY_MB", 32) * 1024 * 1024
RELAY_RETRIES = env_int("RELAY_RETRIES", 2)
# Requests per minute per key when neither the key nor its group sets a limit; 0 means no limit.
RELAY_DEFAULT_RPM = env_int("RELAY_DEFAULT_RPM", 600)
RELAY_DEFAULT_MAX_TOKENS = env_int("RELAY_DEFAULT_MAX_TOKENS", 4096)
# Unpriced models are refused unless a default model ratio is set here (for example 1).
RELAY_UNPRICED_MODEL_RATIO = env("RELAY_UNPRICED_MODEL_RATIO")
RELAY_RESERVATION_TIMEOUT_MINUTES = env_int("RELAY_RESERVATION_TIMEOUT_MINUTES", 30)
UPSTREAM_FAILURES_TO_DISABLE = env_int("UPSTREAM_FAILURES_TO_DISABLE", 5)
UPSTREAM_FAILURE_WINDOW_SECONDS = env_int("UPSTREAM_FAILURE_WINDOW_SECONDS", 60)
UPSTREAM_ALERTS = env_bool("UPSTREAM_ALERTS", True)  # mail the operators when an upstream or a key is disabled
DEMO_CHUNK_DELAY_MS = env_int("DEMO_CHUNK_DELAY_MS", 20)

# --- Generation tasks (Midjourney, music, video, audio), polled and settled by the worker ---
TASK_POLL_SECONDS = env_int("TASK_POLL_SECONDS", 15)
TASK_POLL_BATCH = env_int("TASK_POLL_BATCH", 500)
# A task still unfinished this long after its submit fails and is refunded.
TASK_TIMEOUT_MINUTES = {
    "midjourney": env_int("TASK_TIMEOUT_MIDJOURNEY_MINUTES", 30),
    "music": env_int("TASK_TIMEOUT_MUSIC_MINUTES", 30),
    "video": env_int("TASK_TIMEOUT_VIDEO_MINUTES", 120),
    "audio": env_int("TASK_TIMEOUT_AUDIO_MINUTES", 30),
}
# notifyHook callbacks never go to private, loopback or link-local addresses unless this is set.
TASK_NOTIFY_ALLOW_PRIVATE = env_bool("TASK_NOTIFY_ALLOW_PRIVATE", False)
TASK_NOTIFY_RETRIES = env_int("TASK_NOTIFY_RETRIES", 5)
TASK_NOTIFY_BACKOFF_SECONDS = env_int("TASK_NOTIFY_BACKOFF_SECONDS", 10)
TASK_NOTIFY_TIMEOUT_SECONDS = float(env("TASK_NOTIFY_TIMEOUT_SECONDS", "5"))
DEMO_TASK_SECONDS = float(env("DEMO_TASK_SECONDS", "10"))
# Midjourney task images served from this site (`/mj/image/{id}`, signed) rather than the upstream's address.
MJ_IMAGE_PROXY = env_bool("MJ_IMAGE_PROXY", False)
# Usage logs older than LOG_RETENTION_DAYS are deleted hourly, this many rows per statement.
LOG_PRUNE_BATCH = env_int("LOG_PRUNE_BATCH", 5000)
# A stopping server lets calls in flight finish this long, then ends the streams still open (billed for what was sent).
RELAY_SHUTDOWN_GRACE_SECONDS = float(env("RELAY_SHUTDOWN_GRACE_SECONDS", "20"))
# A delivered answer's charge is retried this long while the database is away (then the sweep refunds the hold).
RELAY_SETTLE_RETRY_SECONDS = float(env("RELAY_SETTLE_RETRY_SECONDS", "120"))
# Book each request's reservation before going upstream (one database round trip): no overspending across processes.
RELAY_STRICT_BALANCE = env_bool("RELAY_STRICT_BALANCE", False)
# Realtime WebSocket sessions (/v1/realtime): closed after this long without a frame either way, and after this
# long in all (kept below RELAY_RESERVATION_TIMEOUT_MINUTES, after which the sweeper refunds a session's hold).
REALTIME_IDLE_TIMEOUT_SECONDS = float(env("REALTIME_IDLE_TIMEOUT_SECONDS", "300"))
REALTIME_MAX_SESSION_SECONDS = float(env("REALTIME_MAX_SESSION_SECONDS", "1800"))
# A session holds the cost of one response of this many audio tokens in and out, and may start a response only
# while that hold is whole; the hold is refunded when the session ends (each response is charged on its own).
REALTIME_RESERVE_TOKENS = env_int("REALTIME_RESERVE_TOKENS", 4096)
# How long a session whose client left waits for the response in progress to report its usage.
REALTIME_DRAIN_SECONDS = float(env("REALTIME_DRAIN_SECONDS", "5"))

# --- Operations ---
# /metrics answers a bearer METRICS_TOKEN, or clients inside METRICS_ALLOW_IPS.
METRICS_TOKEN = env("METRICS_TOKEN", "")
METRICS_ALLOW_IPS = env_list("METRICS_ALLOW_IPS", "127.0.0.1/32,::1/128")
LOG_FORMAT = env("LOG_FORMAT", "plain")  # "json": one JSON object per line, with the request id

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "config.logs.JsonFormatter"},
    },
    "filters": {"request_id": {"()": "config.logs.RequestIdFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json" if LOG_FORMAT == "json" else "plain",
                             "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},  # a line per upstream call otherwise
        "httpcore": {"level": "WARNING"},
    },
}
