"""Installing and configuring like the ecosystem does: kombu's own options, extras, no admin required."""
import sys

import pytest
from django.test import override_settings

from tests.testapp.models import Article, ArticleTrackableData
from trackable import transport
from trackable.checks import check_settings
from trackable.folding import process_messages
from trackable.messaging import send_increment_message


@pytest.mark.no_broker
def test_missing_redis_dependency_names_the_module(monkeypatch):
    # kombu 5.7's Redis transport imports `packaging`, which plain `pip install redis` does not bring.
    import kombu.transport

    monkeypatch.setattr(kombu.transport, "_transport_cache", {})  # kombu keeps resolved transport classes
    monkeypatch.delitem(sys.modules, "kombu.transport.redis", raising=False)
    for name in ("packaging", "packaging.version"):
        monkeypatch.setitem(sys.modules, name, None)
    with override_settings(TRACKABLE_BROKER_URL="redis://127.0.0.1:6379/0"):
        errors = check_settings()
    assert [e.id for e in errors] == ["trackable.E001"]
    assert errors[0].msg.startswith("The trackable broker URL 'redis://127.0.0.1:6379/0' is unusable: import of packaging")
    assert errors[0].hint == (
        "Install the Python module 'packaging.version', which kombu's redis:// transport imports: "
        'pip install "django-trackable[redis]" installs kombu[redis] with the versions it needs.'
    )


def _kombu_style(tmp_path, setting):
    folder = tmp_path / "kombu-queue"
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    overrides = {"TRACKABLE_QUEUE_DIR": None, "BASE_DIR": None, setting: options}
    if setting == "CELERY_BROKER_TRANSPORT_OPTIONS":
        overrides.update(TRACKABLE_BROKER_URL=None, CELERY_BROKER_URL="filesystem://")
    else:
        overrides.update(TRACKABLE_BROKER_URL="filesystem://")
    return folder, overrides


@pytest.mark.no_broker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("setting", ["CELERY_BROKER_TRANSPORT_OPTIONS", "TRACKABLE_BROKER_TRANSPORT_OPTIONS"])
@pytest.mark.usefixtures("direct_publish")  # one file per send, at the call
def test_filesystem_broker_uses_kombus_folder_options(tmp_path, setting):
    folder, overrides = _kombu_style(tmp_path, setting)
    article = Article.objects.create(title="a")
    with override_settings(**overrides):
        try:
            assert check_settings() == []
            for _ in range(3):
                assert send_increment_message(None, article, "impressions") is True
            assert len([p for p in folder.iterdir() if p.is_file()]) == 3
            result = process_messages([ArticleTrackableData])
        finally:
            transport.reset()
    assert result.messages == 3
    assert list(ArticleTrackableData.objects.values_list("object_id", "impressions")) == [(article.pk, 3)]


@pytest.mark.no_broker
def test_filesystem_broker_without_any_folder_is_e002():
    with override_settings(
        TRACKABLE_BROKER_URL=None, CELERY_BROKER_URL="filesystem://", CELERY_BROKER_TRANSPORT_OPTIONS={},
        TRACKABLE_BROKER_TRANSPORT_OPTIONS={}, TRACKABLE_QUEUE_DIR=None, BASE_DIR=None,
    ):  # fmt: skip
        errors = check_settings()
    assert [e.id for e in errors] == ["trackable.E002"]
    assert "kombu's data_folder_in/data_folder_out" in errors[0].hint
