"""Settings of the benchmarks: their own PostgreSQL database and queue names, never the test ones.

TRACKABLE_BENCH_BROKER chooses amqp, redis or filesystem (a folder under bench/out/);
TRACKABLE_BENCH_RUN_ID makes the names unique per run.
"""
import os
import tempfile
import uuid
from pathlib import Path

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.sessions",
    "trackable",
    "tests.testapp",
]

BROKER = os.environ.get("TRACKABLE_BENCH_BROKER", "amqp")
RUN_ID = os.environ.setdefault("TRACKABLE_BENCH_RUN_ID", uuid.uuid4().hex[:8])
BROKER_URLS = {
    "amqp": os.environ.get("TRACKABLE_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    "redis": os.environ.get("TRACKABLE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
    "filesystem": "filesystem://",
}
if BROKER not in BROKER_URLS:
    raise RuntimeError(f"TRACKABLE_BENCH_BROKER={BROKER!r}: choose amqp, redis or filesystem.")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": f"trackable_bench_{RUN_ID}",
        "USER": os.environ.get("TRACKABLE_BENCH_PG_USER", "postgres"),
        "HOST": os.environ.get("TRACKABLE_BENCH_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("TRACKABLE_BENCH_PG_PORT", "5432"),
    }
}
TRACKABLE_BROKER_URL = BROKER_URLS[BROKER]
TRACKABLE_QUEUE_PREFIX = f"trackable-bench-{RUN_ID}"
if BROKER == "filesystem":
    TRACKABLE_QUEUE_DIR = str(Path(__file__).resolve().parent / "out" / f"queue-{RUN_ID}")
TRACKABLE_JOURNAL_DIR = os.path.join(tempfile.gettempdir(), f"trackable-bench-journal-{RUN_ID}")
if BROKER == "redis":
    TRACKABLE_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
if os.environ.get("TRACKABLE_BENCH_QUEUE_TYPE", "classic") == "quorum":
    TRACKABLE_QUEUE_ARGUMENTS = {"x-queue-type": "quorum"}  # RabbitMQ quorum queues (docs/scaling.rst)
