"""WSGI entry point of the web kill harness (gunicorn tests.chaos.wsgi:application)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.chaos.web_settings")
application = get_wsgi_application()
