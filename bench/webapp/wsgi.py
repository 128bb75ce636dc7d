"""WSGI entry point of the bench site (gunicorn bench.webapp.wsgi:application)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.web_settings")
application = get_wsgi_application()
