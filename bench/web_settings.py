"""Settings of the bench site (bench_web.py): bench.settings plus the Item page, sessions and django-hitcount.

TRACKABLE_BENCH_WEB_SETTINGS (JSON) overrides settings for one server start, e.g.
{"TRACKABLE_PUBLISH_CONFIRMS": false}: that is how bench_web.py runs a mode.
"""
import json
import os

from bench.settings import *  # noqa: F401,F403
from bench.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "hitcount", "bench.webapp.apps.WebappConfig"]
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "bench.webapp.urls"
# A typical site: sessions and users (django-hitcount needs both), common middleware.
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
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
SILENCED_SYSTEM_CHECKS = ["trackable.W011", "trackable.W012"]  # the test project's unregistered models
DATABASES["default"]["CONN_MAX_AGE"] = 60  # persistent database connections, as production sites have them

globals().update(json.loads(os.environ.get("TRACKABLE_BENCH_WEB_SETTINGS", "{}")))
