"""Every TRACKABLE_* setting is type- and range-checked at startup, from one table, with a hint naming the fix."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import override_settings

from trackable.checks import SETTING_RULES, check_settings
from trackable.conf import DEFAULTS

pytestmark = pytest.mark.no_broker

# Settings checked by their own checks (E010, E011).
CHECKED_ELSEWHERE = {"RETENTION", "IMPORT_RESOLVER"}


@pytest.mark.parametrize(
    "name, value, check_id, requirement",
    [
        ("DEFAULT_WINDOW_DAYS", "30", "trackable.E004", "a whole number of days from 1 to 3660"),
        ("DEFAULT_WINDOW_DAYS", -1, "trackable.E004", "a whole number of days from 1 to 3660"),
        ("DEFAULT_WINDOW_DAYS", 10**6, "trackable.E004", "a whole number of days from 1 to 3660"),
        ("LINK_MAX_AGE", -1, "trackable.E004", "a positive number of seconds or None (never expire)"),
        ("LINK_MAX_AGE", "abc", "trackable.E004", "a positive number of seconds or None (never expire)"),
        ("LINK_REPLAY_LIMIT", -5, "trackable.E004", "an int of 0 or more (0: no limit)"),
        ("LINK_REPLAY_WINDOW", 0, "trackable.E004", "a positive number of seconds"),
        ("IMPORT_CHUNK_LINES", 0, "trackable.E004", "a positive int"),
        ("OUTAGE_MAIL_INTERVAL", "x", "trackable.E004", "a number of seconds (0: never mail)"),
        ("CONNECT_TIMEOUT", float("nan"), "trackable.E004", "a positive int or float"),
        ("REMOVE_MALFORMED_MESSAGES", "no", "trackable.E020", "True or False"),
        ("USER_AGENT_FILTERING", 1, "trackable.E020", "True or False"),
        ("REGISTER_ADMIN", "yes", "trackable.E020", "True or False (or None)"),
        ("QUEUE_PREFIX", "", "trackable.E021", "a non-empty string"),
        ("IMPORT_URLS", ["x"], "trackable.E021", 'a dict of URL name → "app_label.Model.field"'),
        ("HUMAN_USER_AGENTS", "bot", "trackable.E021", "a list of pattern strings or None"),
        ("API_PERMISSION", "nowhere.is_staff", "trackable.E022", "the dotted path of a callable(request) -> bool"),
        ("API_PERMISSION", "trackable.conf.PREFIX", "trackable.E022", "the dotted path of a callable(request) -> bool"),
        ("BREAKDOWN_MAX_VALUES", 0, "trackable.E004", "a whole number of values from 1 to 100000"),
        ("BREAKDOWN_MAX_VALUES", True, "trackable.E004", "a whole number of values from 1 to 100000"),
        ("PAGE_VIEWS_EXCLUDE", "/static/", "trackable.E021", "a list of path prefix strings or None"),
    ],
)
def test_a_bad_setting_is_reported_with_its_id_and_fix(name, value, check_id, requirement):
    with override_settings(**{f"TRACKABLE_{name}": value}):
        errors = check_settings()
    assert [(e.id, e.msg) for e in errors] == [(check_id, f"TRACKABLE_{name} is {value!r}; it must be {requirement}.")]
    assert errors[0].hint == (
        f"Set TRACKABLE_{name} to {requirement} in your settings (e.g. TRACKABLE_{name} = {DEFAULTS[name]!r}, "
        "the default), or remove it to use the default."
    )


def test_every_default_passes_its_rule():
    for name, rule in SETTING_RULES.items():
        assert rule.accepts(DEFAULTS[name]), name


def test_every_setting_has_a_rule():
    assert set(DEFAULTS) - set(SETTING_RULES) - CHECKED_ELSEWHERE == set()


def test_every_check_id_is_documented():
    source = Path(__file__).resolve().parent.parent / "trackable" / "checks.py"
    ids = set(re.findall(r"trackable\.[EW]\d{3}", source.read_text()))
    docs = (Path(__file__).resolve().parent.parent / "docs" / "checks.rst").read_text()
    assert {i for i in ids if f"``{i}``" not in docs} == set()


def test_a_missing_re2_is_reported(monkeypatch):
    import sys

    from trackable.checks import check_spiders

    monkeypatch.setitem(sys.modules, "re2", None)
    assert [(e.id, e.msg, e.hint) for e in check_spiders()] == [
        (
            "trackable.E008",
            "google-re2 cannot be imported, and spider patterns are matched with RE2 only.",
            "pip install google-re2 (a dependency of django-trackable; reinstall django-trackable).",
        )
    ]
