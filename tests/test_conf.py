"""The settings object: defaults, overrides, the legacy misspelling, the broker URL fallbacks."""
import warnings

import pytest
from django.test import override_settings

from trackable.conf import settings
from trackable.exceptions import TrackableDeprecationWarning

pytestmark = pytest.mark.no_broker


def test_defaults():
    with override_settings():
        from django.conf import settings as dj

        for name in ("TRACKABLE_COLLECTION_PERIOD", "TRACKABLE_BROKER_URL", "TRACKABLE_QUEUE_DIR"):
            if hasattr(dj, name):
                delattr(dj, name)
        assert settings.COLLECTION_PERIOD == 1800
        assert settings.DISABLE_COLLECTION_TASK is False
        assert settings.CAPTURE_CONNECTION_ERRORS is False
        assert settings.REMOVE_MALFORMED_MESSAGES is False
        assert settings.USER_AGENT_FILTERING is False
        assert settings.BATCH_SIZE == 1000


def test_override_settings_is_seen():
    assert settings.BATCH_SIZE == 1000
    with override_settings(TRACKABLE_BATCH_SIZE=5):
        assert settings.BATCH_SIZE == 5
    assert settings.BATCH_SIZE == 1000


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError) as err:
        settings.BATCHSIZE  # noqa: B018
    assert str(err.value) == "Invalid django-trackable setting: 'TRACKABLE_BATCHSIZE'"


def test_legacy_misspelling_is_honoured_with_a_warning():
    with override_settings(TRACKABLE_USER_AGENT_FILTERTING=True), pytest.warns(TrackableDeprecationWarning) as caught:
        assert settings.USER_AGENT_FILTERING is True
    assert str(caught[0].message) == (
        "The setting TRACKABLE_USER_AGENT_FILTERTING is misspelled and deprecated; "
        "rename it to TRACKABLE_USER_AGENT_FILTERING."
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert settings.USER_AGENT_FILTERING is False


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"TRACKABLE_BROKER_URL": "redis://h:1/2", "CELERY_BROKER_URL": "amqp://x//"}, "redis://h:1/2"),
        ({"TRACKABLE_BROKER_URL": None, "CELERY_BROKER_URL": "amqp://x//"}, "amqp://x//"),
        ({"TRACKABLE_BROKER_URL": None, "CELERY_BROKER_URL": None, "BROKER_URL": "redis://old//"}, "redis://old//"),
        ({"TRACKABLE_BROKER_URL": None, "CELERY_BROKER_URL": None}, "filesystem://"),
    ],
)
def test_broker_url_falls_back_to_celery_then_filesystem(overrides, expected):
    with override_settings(**overrides):
        assert settings.broker_url == expected


def test_queue_dir_defaults_to_base_dir(tmp_path):
    with override_settings(TRACKABLE_QUEUE_DIR=None, BASE_DIR=tmp_path):
        assert settings.queue_dir == tmp_path / "trackable-queue"
    with override_settings(TRACKABLE_QUEUE_DIR=None, BASE_DIR=None):
        assert settings.queue_dir is None


def test_time_zone_defaults_to_site_zone():
    with override_settings(TIME_ZONE="Europe/Paris"):
        assert settings.time_zone == "Europe/Paris"
    with override_settings(TIME_ZONE="Europe/Paris", TRACKABLE_TIME_ZONE="UTC"):
        assert settings.time_zone == "UTC"


def test_register_admin_follows_debug_unless_set():
    with override_settings(DEBUG=True):
        assert settings.register_admin is True
    with override_settings(DEBUG=True, TRACKABLE_REGISTER_ADMIN=False):
        assert settings.register_admin is False
    with override_settings(DEBUG=False, TRACKABLE_REGISTER_ADMIN=True):
        assert settings.register_admin is True
