"""Settings of the web kill harness's gunicorn: the test project with the tracked view of web_urls."""
from tests.settings import *  # noqa: F401,F403

ROOT_URLCONF = "tests.chaos.web_urls"
MIDDLEWARE = []  # the tracked view needs no session or user: each request costs what tracking costs
