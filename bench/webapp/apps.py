from django.apps import AppConfig


class WebappConfig(AppConfig):
    name = "bench.webapp"
    label = "webapp"
    default_auto_field = "django.db.models.BigAutoField"
