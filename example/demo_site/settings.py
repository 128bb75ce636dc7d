"""Settings of the demo: SQLite and the embedded filesystem:// queue, so no server is needed."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("TRACKABLE_DEMO_STATE_DIR", BASE_DIR))
SECRET_KEY = "demo-only-not-secret"
DEBUG = True  # the data models' admin is registered only when DEBUG is on
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "Europe/Paris"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "trackable",
    "shop",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "trackable.middleware.PageViewMiddleware",  # page views of every path, into trackable.PageViews
]
ROOT_URLCONF = "demo_site.urls"
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
# The web server and the fold loop share the file: IMMEDIATE transactions wait for each other rather than
# failing with "database is locked" (docs/brokers.rst).
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": STATE_DIR / "db.sqlite3",
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"

# django-trackable: everything embedded. The queue is a folder beside the database.
TRACKABLE_BROKER_URL = "filesystem://"
TRACKABLE_QUEUE_DIR = STATE_DIR / "trackable-queue"
TRACKABLE_CAPTURE_CONNECTION_ERRORS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"trackable": {"handlers": ["console"], "level": "INFO"}},
}
