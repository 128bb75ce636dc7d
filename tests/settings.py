"""Settings of the test project. TRACKABLE_TEST_DB and TRACKABLE_TEST_BROKER choose the real services."""
import importlib.util
import os
import uuid
from pathlib import Path
from typing import Any

import django

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]

TEST_DB = os.environ.get("TRACKABLE_TEST_DB", "sqlite")
TEST_BROKER = os.environ.get("TRACKABLE_TEST_BROKER", "filesystem")
RUN_ID = os.environ.setdefault("TRACKABLE_TEST_RUN_ID", uuid.uuid4().hex[:8])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",  # the live server of tests/test_browser.py serves admin CSS and beacon.js
    "trackable",
    "tests.testapp",
    "tests.legacyapp",
]
# django-celery-beat is optional (2.9 supports Django < 6.1): its scheduler is tested where it installs.
if importlib.util.find_spec("django_celery_beat") is not None:
    INSTALLED_APPS.insert(INSTALLED_APPS.index("trackable"), "django_celery_beat")
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
if django.VERSION >= (6, 1):  # Django 6.1's mail configuration (the test runner swaps in its memory backend)
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
STATIC_URL = "/static/"

DATABASES: dict[str, dict[str, Any]]
if TEST_DB == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "test",
            "USER": os.environ.get("TRACKABLE_TEST_PG_USER", "postgres"),
            "HOST": os.environ.get("TRACKABLE_TEST_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("TRACKABLE_TEST_PG_PORT", "5432"),
            "TEST": {"NAME": f"test_trackable_{TEST_BROKER}_{RUN_ID}"},
        }
    }
elif TEST_DB == "mysql":
    try:
        import MySQLdb  # noqa: F401 - mysqlclient, when installed
    except ImportError:
        import pymysql  # the pure-Python client needs no compiler or client library

        pymysql.install_as_MySQLdb()
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": "test",
            "USER": "root",
            "HOST": "127.0.0.1",
            "PORT": "3306",
            "TEST": {"NAME": f"test_trackable_{TEST_BROKER}_{RUN_ID}"},
        }
    }
elif TEST_DB == "sqlite":
    # A file, not :memory:, so a celery worker subprocess sees the same test database.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(BASE_DIR / f".db-{RUN_ID}.sqlite3"),
            "TEST": {"NAME": str(BASE_DIR / f".test-db-{RUN_ID}.sqlite3")},
            # IMMEDIATE: a transaction takes the write lock when it begins, so a reader that later writes
            # (the fold, beat's DatabaseScheduler) waits for the other process instead of failing at once
            # with "database is locked" (SQLite does not wait when a deferred reader must upgrade).
            "OPTIONS": {"timeout": 30, **({"transaction_mode": "IMMEDIATE"} if django.VERSION >= (5, 1) else {})},
        }
    }
else:
    raise RuntimeError(f"TRACKABLE_TEST_DB={TEST_DB!r}: choose sqlite, postgres or mysql.")
if os.environ.get("TRACKABLE_TEST_USE_TEST_DB"):
    # A celery worker started by a test works on that test's database.
    DATABASES["default"]["NAME"] = DATABASES["default"]["TEST"]["NAME"]

TRACKABLE_QUEUE_PREFIX = f"trackable-test-{RUN_ID}"
if TEST_BROKER == "filesystem":
    TRACKABLE_BROKER_URL = "filesystem://"
    TRACKABLE_QUEUE_DIR = str(BASE_DIR / f".queue-{RUN_ID}")
elif TEST_BROKER == "amqp":
    TRACKABLE_BROKER_URL = os.environ.get("TRACKABLE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
elif TEST_BROKER == "redis":
    TRACKABLE_BROKER_URL = os.environ.get("TRACKABLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    # No transport options: a killed fold's messages come back after the fold's own lease (redisqueue.LEASE).
else:
    raise RuntimeError(f"TRACKABLE_TEST_BROKER={TEST_BROKER!r}: choose filesystem, amqp or redis.")

TRACKABLE_JOURNAL_DIR = str(BASE_DIR / f".journal-{RUN_ID}")

CELERY_BROKER_URL = TRACKABLE_BROKER_URL
CELERY_BROKER_TRANSPORT_OPTIONS = dict(globals().get("TRACKABLE_BROKER_TRANSPORT_OPTIONS", {}))
if TEST_BROKER == "filesystem":
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        data_folder_in=TRACKABLE_QUEUE_DIR,
        data_folder_out=TRACKABLE_QUEUE_DIR,
        control_folder=str(Path(TRACKABLE_QUEUE_DIR) / "control"),
    )
CELERY_TASK_DEFAULT_QUEUE = f"celery-test-{RUN_ID}"
CELERY_BEAT_SCHEDULE: dict[str, Any] = {}
TRACKABLE_COLLECTION_PERIOD = float(os.environ.get("TRACKABLE_TEST_COLLECTION_PERIOD", "1800"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"trackable": {"handlers": ["console"], "level": "WARNING"}},
}

# The registry tests define data models that are deliberately left unregistered.
SILENCED_SYSTEM_CHECKS = ["trackable.W011", "trackable.W012"]
