"""DreamLayer settings, read from the environment (django-environ).

Every embedded default (SQLite, embedded Redis, private media folder, classical engine) is
replaced in production by one environment variable; see docs/configuration.md.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import environ

from inpainting.prefixes import API_PATHS_REGEX

from . import embedded_redis

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DATA_DIR = Path(env.str("DREAMLAYER_DATA_DIR", default=str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DJANGO_DEBUG", default=False)


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, else one generated once into the data folder (a single machine's
    `make run` and management commands share it; several web machines must be given the same
    key in the environment: docs/scaling-out.md)."""
    key = env.str("DJANGO_SECRET_KEY", default="")
    if key:
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "corsheaders",
    "axes",
    "channels",
    "accounts",
    "inpainting",
    "django_cleanup.apps.CleanupConfig",
]

MIDDLEWARE = [
    "inpainting.metrics.http_metrics_middleware",  # outermost: times the whole request
    "accounts.pathkey.key_in_path_middleware",  # /k/<key>/sdapi/...: before anything reads the path
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",  # before CommonMiddleware, as it documents
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.LoginThrottleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dreamlayer_site.urls"
ASGI_APPLICATION = "dreamlayer_site.asgi.application"

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

# --- database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker processes write concurrently: WAL and waiting instead of "locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test_db.sqlite3")}
#: The most PostgreSQL connections the web process' pool holds (0: no pool).
DATABASE_POOL_MAX = env.int("DATABASE_POOL_MAX", default=40)
#: Set by ``python -m dreamlayer_site.serve`` for itself: this process is the web server.
WEB_PROCESS = env.bool("DREAMLAYER_WEB_PROCESS", default=False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and WEB_PROCESS:
    # The web process takes PostgreSQL connections from a pool and gives them back (psycopg's
    # pool, Django's ``pool`` option): without it every request, every socket message and the
    # server's head check each opened one (a PostgreSQL process started and authenticated,
    # about 5 ms and 8 ms of the server's CPU) and closed it, since Django under ASGI keeps no
    # persistent connections. A waiting client holds its connection while it waits: past
    # DATABASE_POOL_MAX at once, a request waits up to 30 s for one. The Celery workers keep
    # their own connections, unpooled: a prefork pool's processes would inherit a pool opened
    # in their parent. A pooled connection is checked as it is taken (CONN_HEALTH_CHECKS), so
    # that a restarted PostgreSQL costs no request an error; ``pg_stat_activity`` names them.
    if DATABASE_POOL_MAX:
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            application_name="dreamlayer web",
            pool={"min_size": 1, "max_size": DATABASE_POOL_MAX, "max_idle": 60.0},
        )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes: a username + address pair is locked out after AXES_FAILURE_LIMIT failed logins.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("LOGIN_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # lock-outs are still logged as warnings
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- redis: broker, channel layer, cache ------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
EMBEDDED_REDIS = not REDIS_URL
if EMBEDDED_REDIS:
    _embedded = embedded_redis.urls(DATA_DIR)
    REDIS_URL, CELERY_BROKER_URL = _embedded["redis"], _embedded["celery"]
else:
    CELERY_BROKER_URL = embedded_redis.celery_url(REDIS_URL)

# The channel layer's Redis connections in each process (per event loop: daphne has one): a
# pool of CHANNEL_LAYER_POOL_SIZE where a command that finds every connection busy waits up to
# CHANNEL_LAYER_POOL_TIMEOUT seconds for one instead of failing at once
# (dreamlayer_site/channel_layer.py). A command holds a connection for one round trip; a
# receive holds one while it blocks (one for all the websockets, one per waiting request).
CHANNEL_LAYER_POOL_SIZE = env.int("CHANNEL_LAYER_POOL_SIZE", default=100)
CHANNEL_LAYER_POOL_TIMEOUT = env.float("CHANNEL_LAYER_POOL_TIMEOUT", default=10.0)
# A channel is dropped from a group this long after it joined (channels-redis's default is a
# day): a channel whose unsubscribe failed for good (its retries too) is forgotten within the
# hour. A websocket open longer re-joins its group every half of this
# (inpainting/consumers.py); a waiting request that outlived it would miss only progress
# events, since it asks the database for the job's end every few seconds.
CHANNEL_LAYER_GROUP_EXPIRY = env.int("CHANNEL_LAYER_GROUP_EXPIRY", default=3600)
# Open websockets one user may have at once, across web processes (counted in Redis, each
# socket renewing its place; a killed process's places lapse within two minutes): the next is
# closed with 4429.
WEBSOCKETS_PER_USER = env.int("WEBSOCKETS_PER_USER", default=20)
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "dreamlayer_site.channel_layer.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 defaults to a 5 s socket timeout, the same as channels-redis's
            # blocking BZPOPMIN: an idle receive would then time out. Read longer than that.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
            "pool_size": CHANNEL_LAYER_POOL_SIZE,
            "pool_timeout": CHANNEL_LAYER_POOL_TIMEOUT,
            "capacity": 1000,
            "expiry": 60,
            "group_expiry": CHANNEL_LAYER_GROUP_EXPIRY,
        },
    }
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"pool_class": "dreamlayer_site.redis_pool.SharedConnectionPool"},
    }
}

# --- celery (SPEC §7) --------------------------------------------------------------------------
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SOFT_TIME_LIMIT = env.int("INFERENCE_SOFT_TIME_LIMIT", default=600)
CELERY_TASK_TIME_LIMIT = env.int("INFERENCE_TIME_LIMIT", default=660)
# A message not acknowledged within this time is redelivered: keep it above the hard limit.
# Priorities (Redis: 0 runs first): a job taken over from a dead worker goes ahead of the jobs
# queued after it, instead of to the back of the queue.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_TASK_TIME_LIMIT * 2,
    "queue_order_strategy": "priority",
    "priority_steps": [0, 5],
    "sep": ":",
}
CELERY_TASK_DEFAULT_PRIORITY = 5
TAKEOVER_PRIORITY = 0
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "inpainting.tasks.run_generation": {"queue": "inference"},
    "inpainting.tasks.run_selection": {"queue": "select"},
}
# The worker running a job writes its heartbeat every HEARTBEAT_SECONDS. A running job whose
# heartbeat is older than HEARTBEAT_TIMEOUT_SECONDS lost its worker (a kill, a crash, a lost
# machine): Celery's redelivered message or the reaper runs it again, up to
# MAX_GENERATION_ATTEMPTS, then it fails with a message.
HEARTBEAT_SECONDS = env.float("HEARTBEAT_SECONDS", default=5.0)
HEARTBEAT_TIMEOUT_SECONDS = env.float("HEARTBEAT_TIMEOUT_SECONDS", default=20.0)
MAX_GENERATION_ATTEMPTS = env.int("MAX_GENERATION_ATTEMPTS", default=3)
# A queued job whose message is older than this is sent again (a backstop: a Redis restart
# without persistence is noticed at once, see services.reaper).
REAP_QUEUED_AFTER_SECONDS = env.int("REAP_QUEUED_AFTER_SECONDS", default=600)
CELERY_BEAT_SCHEDULE = {
    "reap-stuck-generations": {
        "task": "inpainting.tasks.reap_stuck_generations",
        "schedule": env.float("REAP_EVERY_SECONDS", default=5.0),
    },
    # Retention (inpainting/services/retention.py): a no-op while RETENTION_DAYS is 0.
    "delete-expired-generations": {
        "task": "inpainting.tasks.delete_expired_generations",
        "schedule": env.float("RETENTION_EVERY_SECONDS", default=3600.0),
    },
}
# Jobs that ended more than this many days ago are deleted with their files; 0: kept for ever.
RETENTION_DAYS = env.int("RETENTION_DAYS", default=0)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- storage: private, served only through permission-checking views ---------------------------
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = None  # there is no public media URL
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    _media_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env.str("AWS_S3_REGION_NAME", default=None),
            # "path" for MinIO-style servers that have no per-bucket host names.
            "addressing_style": env.str("AWS_S3_ADDRESSING_STYLE", default=None),
            "default_acl": "private",
            # Nothing hands out bucket URLs (images stream through the web process); were one
            # made, it would be signed, never public.
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _media_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": None},
    }
STORAGES = {
    "default": _media_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- uploads (SPEC §7) -------------------------------------------------------------------------
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=10 * 1024 * 1024)
UPLOAD_MAX_PIXELS = env.int("UPLOAD_MAX_PIXELS", default=4096 * 4096)
# The largest picture an upscale may make (pixels in all), checked before any pixel work.
UPSCALE_MAX_PIXELS = env.int("UPSCALE_MAX_PIXELS", default=8192 * 8192)
# The longest side any image may have (inputs, masks, targets, previews): PNG encoders and
# most browsers give up on much longer rows, and a 16383 x 1 strip is nobody's photo.
UPLOAD_MAX_SIDE = env.int("UPLOAD_MAX_SIDE", default=16384)
# The web process' budget for pixel work done where a request is answered (inpainting/gate.py,
# docs/adr/0011-the-web-budget.md): pixels held at once in the process (by default the largest
# upscale and its input: one of those at a time), requests one user may have there at once,
# how long a request waits for room before its 503, and the Retry-After of a refusal.
WEB_PIXELS_AT_ONCE = env.int("WEB_PIXELS_AT_ONCE", default=UPSCALE_MAX_PIXELS + UPLOAD_MAX_PIXELS)
WEB_PIXEL_REQUESTS_PER_USER = env.int("WEB_PIXEL_REQUESTS_PER_USER", default=3)
WEB_PIXELS_SMALL = env.int("WEB_PIXELS_SMALL", default=1024 * 1024)  # not in the user's count
# Seconds an answer may make no progress (its client reads nothing) before daphne cuts its
# connection (dreamlayer_site/serve.py paces answers by their reader).
ANSWER_STALL_SECONDS = env.float("ANSWER_STALL_SECONDS", default=30.0)
# Answers made in the web process and on their way out (A1111's extras): their bytes held at
# once, one user's and the process' (a 429 / 503 past them), and the least a reader must take
# in each window while the answer waits for it (REQUEST_BODY_WINDOW_SECONDS), else it is cut.
ANSWER_BYTES_PER_USER = env.int("ANSWER_BYTES_PER_USER", default=256 * 1024 * 1024)
ANSWER_BYTES_AT_ONCE = env.int("ANSWER_BYTES_AT_ONCE", default=768 * 1024 * 1024)
ANSWER_MIN_BYTES_PER_WINDOW = env.int("ANSWER_MIN_BYTES_PER_WINDOW", default=1024 * 1024)
WEB_PIXEL_WAIT_SECONDS = env.float("WEB_PIXEL_WAIT_SECONDS", default=10.0)
WEB_PIXEL_RETRY_SECONDS = env.int("WEB_PIXEL_RETRY_SECONDS", default=5)
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000/")
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=5)
WEBHOOK_BACKOFF_SECONDS = env.float("WEBHOOK_BACKOFF_SECONDS", default=2.0)
URL_FETCH_ALLOW_PRIVATE = env.bool("URL_FETCH_ALLOW_PRIVATE", default=False)
URL_FETCH_TIMEOUT = env.float("URL_FETCH_TIMEOUT", default=10.0)
# The largest body a client has reason to send: two files at the upload limit as base64 in a
# JSON body (ModelsLab, FooocusAPI), plus the other fields. Daphne refuses a larger one with a
# 413 before reading it (dreamlayer_site/serve.py), whoever sends it.
REQUEST_MAX_BYTES = env.int(
    "REQUEST_MAX_BYTES", default=2 * (UPLOAD_MAX_BYTES * 4 // 3 + 4) + 1024 * 1024
)
# A larger body is read only once the request's head brought valid credentials (an API key,
# /k/<key>/, a logged-in session cookie): a log-in or sign-up form fits (dreamlayer_site/serve.py).
ANONYMOUS_BODY_MAX_BYTES = env.int("ANONYMOUS_BODY_MAX_BYTES", default=64 * 1024)
# ModelsLab's key is in its JSON body: anonymous larger bodies there, at once per client address.
ANONYMOUS_BODIES_PER_ADDRESS = env.int("ANONYMOUS_BODIES_PER_ADDRESS", default=2)
# A body must bring at least this many bytes in each window (or end), else a 408 and closed.
REQUEST_BODY_MIN_BYTES_PER_WINDOW = env.int("REQUEST_BODY_MIN_BYTES_PER_WINDOW", default=16 * 1024)
# The window's length in seconds.
REQUEST_BODY_WINDOW_SECONDS = env.float("REQUEST_BODY_WINDOW_SECONDS", default=10.0)
# The most seconds a whole body may take to arrive, however fast it comes, else a 408.
REQUEST_BODY_MAX_SECONDS = env.float("REQUEST_BODY_MAX_SECONDS", default=300.0)
# Body bytes one web process receives at once, all requests together; past it a 503.
REQUEST_BODIES_MAX_BYTES = env.int("REQUEST_BODIES_MAX_BYTES", default=512 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- API -------------------------------------------------------------------------------------
# CORS (django-cors-headers): the sites whose pages may call the APIs from a browser
# (openOutpaint's page, for example), e.g. "https://openoutpaint.example,http://127.0.0.1:3456".
# None by default. Credentials are never allowed cross-origin: such a page sends the key itself
# (the Authorization header). A preflight is answered before authentication.
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOW_CREDENTIALS = False
CORS_URLS_REGEX = API_PATHS_REGEX  # inpainting/prefixes.py
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's three, with a JSON body nested too deep for the decoder a 400 (not a 500).
    "DEFAULT_PARSER_CLASSES": [
        "inpainting.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 24,
    "EXCEPTION_HANDLER": "inpainting.api.errors.exception_handler",
    # Counted in the Redis cache, so the limits hold across web processes.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("THROTTLE_ANON", default="60/min"),
        "user": env.str("THROTTLE_USER", default="600/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Formats come from the Accept header only; a ?format= query parameter means nothing.
    "URL_FORMAT_OVERRIDE": None,
}
# Per client address (accounts/throttles.py): accounts created, failed log-ins across all
# user names (django-axes also locks one name + address after LOGIN_FAILURE_LIMIT), and
# unusable API keys. Each answers 429 with how long to wait.
THROTTLE_SIGNUP = env.str("THROTTLE_SIGNUP", default="5/hour")
THROTTLE_LOGIN_FAILURES = env.str("THROTTLE_LOGIN_FAILURES", default="30/hour")
THROTTLE_KEY_FAILURES = env.str("THROTTLE_KEY_FAILURES", default="20/minute")
SPECTACULAR_SETTINGS = {
    "TITLE": "DreamLayer API",
    "DESCRIPTION": "Inpainting and outpainting: native API, jobs, history and progress.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # AUTOMATIC1111's resize_mode and inpainting_fill are both 0-3: one enum in the schema;
    # the extras' resize_mode is 0 (by a factor) or 1 (to a size).
    "ENUM_NAME_OVERRIDES": {
        "A1111ZeroToThreeEnum": [(i, i) for i in range(4)],
        "A1111ExtrasResizeModeEnum": [(0, 0), (1, 1)],
        # ``background``: the parameter table's, and OpenAI's (with its ``auto``).
        "BackgroundEnum": "inpainting.engine.parameters.BACKGROUNDS",
        "OpenAIBackgroundEnum": ["auto", "opaque", "transparent"],
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "inpainting.api.schema_errors.document_error_responses",
    ],
}

# --- inference ---------------------------------------------------------------------------------
INPAINT_ENGINE = env.str("INPAINT_ENGINE", default="auto")
#: A compatible API's job with no prompt (FooocusAPI's, AUTOMATIC1111's, ...) runs in erase mode
#: (the best remover, the mask grown by ``dilate_pixels``) instead of inpainting.
ERASE_WITHOUT_PROMPT = env.bool("ERASE_WITHOUT_PROMPT", default=False)
#: Diffusion models: unset or "auto" (the default), on while the model library holds one a job
#: may name (installed or copied in and scanned: it runs with no restart); "true", always on
#: (with an empty library the deployment's own SD_INPAINT_MODEL runs); "false", never (only the
#: fill engines, whatever the library holds). ``inpainting.conf.diffusion_on`` reads it.
LOAD_SD_INPAINT = (
    None
    if env.str("LOAD_SD_INPAINT", default="auto").strip().lower() == "auto"
    else env.bool("LOAD_SD_INPAINT")
)
SD_INPAINT_MODEL = env.str(
    "SD_INPAINT_MODEL", default="stable-diffusion-v1-5/stable-diffusion-inpainting"
)
INPAINT_DEVICE = env.str("INPAINT_DEVICE", default="auto")
# The long side a diffusion model works at; 0 = its family's (SD 1.5: 512, SDXL: 1024).
INPAINT_WORKING_SIZE = env.int("INPAINT_WORKING_SIZE", default=0)
# Diffusion pipelines a worker keeps loaded at once (the least recently used goes first).
MODEL_CACHE_SIZE = env.int("MODEL_CACHE_SIZE", default=1)
# The family of SD_INPAINT_MODEL (sd15, sdxl, sd3, flux, zimage): its defaults, ranges and
# working size. Empty: read from its files where they are (web machines often have none:
# then SD 1.5's).
SD_INPAINT_FAMILY = env.str("SD_INPAINT_FAMILY", default="")
# Where a model's weights live on a CUDA worker (inpainting/engine/memory.py): "auto" takes
# the fastest plan that fits the free GPU memory (gpu, fp8, text-encoder-offload,
# fp8-text-encoder-offload, model-offload, sequential); a plan's name takes that plan. The
# headroom is the GPU memory a job needs beyond the weights. MODEL_OFFLOAD=model / sequential
# (the older setting) still means model-offload / sequential.
_OFFLOAD_PLANS = {"none": "auto", "model": "model-offload", "sequential": "sequential"}
MODEL_MEMORY_PLAN = env.str(
    "MODEL_MEMORY_PLAN", default=_OFFLOAD_PLANS.get(env.str("MODEL_OFFLOAD", default=""), "auto")
)
MODEL_MEMORY_HEADROOM_GB = env.float("MODEL_MEMORY_HEADROOM_GB", default=3.0)
# The library models this worker serves, comma-separated ("none": only the classical and lama
# engines); empty = every enabled library model whose files are on this worker's disk. Each
# model has its own Celery queue, which a worker consumes while it serves the model.
WORKER_MODELS = env.str("WORKER_MODELS", default="")
# GET /metrics (Prometheus) answers a staff login, or this token as "Authorization: Bearer".
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Each worker process reports what it serves and holds every WORKER_REPORT_SECONDS; a worker
# silent for WORKER_REPORT_TIMEOUT_SECONDS is gone (a job for a model no live worker serves
# is refused with a 503).
WORKER_REPORT_SECONDS = env.float("WORKER_REPORT_SECONDS", default=5.0)
WORKER_REPORT_TIMEOUT_SECONDS = env.float("WORKER_REPORT_TIMEOUT_SECONDS", default=20.0)
# A diffusers job takes up to this many compatible queued jobs (itself included) into one
# model batch (same size, steps, strength, guidance and scheduler); 1 turns batching off.
BATCH_MAX_JOBS = env.int("BATCH_MAX_JOBS", default=4)
# torch.compile the UNet when a worker loads the model (slower start, faster steps on CUDA).
INPAINT_COMPILE = env.bool("INPAINT_COMPILE", default=False)
# CUDA graphs of the eager denoiser (issue 81): the working sizes captured at a model's load
# and that only-masked crops are brought to ("auto": the family's own; empty: off).
CUDA_GRAPH_SIZES = env.str("CUDA_GRAPH_SIZES", default="")
CUDA_GRAPH_CAPTURE_SECONDS = env.float("CUDA_GRAPH_CAPTURE_SECONDS", default=120.0)
CLASSICAL_METHOD = env.str("CLASSICAL_METHOD", default="hybrid")
# The model library's folder, and the LaMa engine's ONNX file in it (or an absolute path): the
# lama engine exists when that file does (docs/engines.md, "The LaMa engine").
MODELS_DIR = Path(env.str("MODELS_DIR", default=str(DATA_DIR / "models")))
# An install's download: at most this many bytes (the largest starter model is 58 GB), and it
# leaves this much of the disk free (docs/model-library.md, "Installing models").
INSTALL_MAX_BYTES = env.int("INSTALL_MAX_BYTES", default=80 * 1024**3)
INSTALL_FREE_DISK_BYTES = env.int("INSTALL_FREE_DISK_BYTES", default=2 * 1024**3)
# Pipeline configurations (JSON and tokenizer files, no weights) that single-file checkpoints
# load with, offline: one folder per family (sd15, sd15-inpainting, sdxl, sdxl-inpainting).
MODEL_CONFIGS_DIR = Path(env.str("MODEL_CONFIGS_DIR", default=str(MODELS_DIR / "configs")))
LAMA_MODEL = env.str("LAMA_MODEL", default="big-lama.onnx")
# `make run` installs LaMa (the starter list's `lama`) at its first start when the hub answers,
# in the background; false: never (docs/engines.md, "The LaMa engine").
LAMA_AUTO_INSTALL = env.bool("LAMA_AUTO_INSTALL", default=True)
# LoRAs (.safetensors, kohya / A1111 or diffusers / PEFT layout), recorded by the same scan.
LORAS_DIR = Path(env.str("LORAS_DIR", default=str(MODELS_DIR / "loras")))
# ControlNets (diffusers folders: config.json and .safetensors weights), recorded by the scan.
CONTROLNETS_DIR = Path(env.str("CONTROLNETS_DIR", default=str(MODELS_DIR / "controlnets")))
# IP-Adapters: one folder each, the adapter's .safetensors and its CLIP image encoder in
# image_encoder/ (as h94/IP-Adapter publishes them); a reference picture steers a job through it.
IP_ADAPTERS_DIR = Path(env.str("IP_ADAPTERS_DIR", default=str(MODELS_DIR / "ip-adapters")))
# Mask models (docs/api.md, "Selecting objects"): SAM 2.1 and SAM 3 folders, rembg .onnx files.
MASK_MODELS_DIR = Path(env.str("MASK_MODELS_DIR", default=str(MODELS_DIR / "masks")))
# Upscalers (docs/upscaling.md): super-resolution models spandrel reads (ESRGAN, Real-ESRGAN,
# SwinIR, HAT, DAT ...), .safetensors files or .pth files of weights only.
UPSCALERS_DIR = Path(env.str("UPSCALERS_DIR", default=str(MODELS_DIR / "upscalers")))
# Layer models (docs/api.md, "Splitting a picture into layers"): Qwen-Image-Layered folders.
LAYER_MODELS_DIR = Path(env.str("LAYER_MODELS_DIR", default=str(MODELS_DIR / "layers")))
# Erase adapters (docs/engines.md, "Erase"): one folder each, an edit model's LoRA that removes
# what a mask covers and its prompt embedding (as slopshop/erase-v1 publishes them).
ERASERS_DIR = Path(env.str("ERASERS_DIR", default=str(MODELS_DIR / "erasers")))
# Model installs (docs/model-library.md): the Hugging Face hub they download from, its token
# (staff may set one in the admin instead, kept encrypted), and whether a model under a
# non-commercial licence (FLUX.1 [dev], Kontext [dev]) may be installed.
HF_ENDPOINT = env.str("HF_ENDPOINT", default="https://huggingface.co")
HF_TOKEN = env.str("HF_TOKEN", default="")
ALLOW_NONCOMMERCIAL_MODELS = env.bool("ALLOW_NONCOMMERCIAL_MODELS", default=True)
# How long a selection request waits for the selection worker (the first click on an image
# also loads the model and runs its image encoder), and how many images' embeddings a
# selection worker keeps.
SELECT_WAIT_SECONDS = env.float("SELECT_WAIT_SECONDS", default=60.0)
SELECT_CACHE_IMAGES = env.int("SELECT_CACHE_IMAGES", default=8)
# How many selections one user may have waiting for the selection worker at a time (more is
# a 429): one person's clicks cannot queue everyone else's behind them.
SELECT_IN_FLIGHT_PER_USER = env.int("SELECT_IN_FLIGHT_PER_USER", default=2)
INPAINT_PREVIEW_EVERY = env.int("INPAINT_PREVIEW_EVERY", default=5)
IMG2IMG_WAIT_SECONDS = env.float("IMG2IMG_WAIT_SECONDS", default=60.0)
# How long an image link answered to OpenAI's response_format=url works without a key.
IMAGE_LINK_SECONDS = env.int("IMAGE_LINK_SECONDS", default=3600)
MAX_ACTIVE_GENERATIONS_PER_USER = env.int("MAX_ACTIVE_GENERATIONS_PER_USER", default=10)
# Fair share (docs/scaling-out.md): a worker takes the next job of the user whose jobs cost the
# least over this window (running, or finished within it), in the highest priority lane.
FAIR_SHARE_WINDOW_SECONDS = env.float("FAIR_SHARE_WINDOW_SECONDS", default=600.0)
# The bytes one user's pictures (inputs, masks, outputs, derived pictures) may take in storage
# before a new job is refused (403 with the usage); 0: no limit.
STORAGE_QUOTA_BYTES_PER_USER = env.int("STORAGE_QUOTA_BYTES_PER_USER", default=5 * 1024**3)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # No API key or image link is written to a log (accounts.keyformat.redact).
    "filters": {"redact": {"()": "accounts.keyformat.RedactingFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # django-axes reports every log-in at INFO; failures and lock-outs are warnings.
    "loggers": {
        "axes": {"level": "WARNING"},
        # Django's own handlers (its debug console) would write unredacted paths.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# --- HTTP security (SPEC §7) -----------------------------------------------------------------
# DJANGO_HTTPS=true (behind TLS, e.g. a proxy that sets X-Forwarded-Proto) turns on HTTPS
# redirects, secure cookies and HSTS; `manage.py check --deploy` is then clean.
HTTPS = env.bool("DJANGO_HTTPS", default=False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = HTTPS
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^api/health$"]  # load balancer probes speak plain HTTP
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Pages: scripts, styles and connections from this origin only, no inline script, no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Images served from storage: never scripts, never a document, even if a browser sniffs.
MEDIA_CONTENT_SECURITY_POLICY = "default-src 'none'; sandbox"
