"""Project-level promises: migrations match models, system checks name the fix, the demo runs."""
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from trackable.checks import check_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.no_broker
@pytest.mark.django_db
def test_models_match_migrations():
    out = StringIO()
    call_command("makemigrations", "trackable", "testapp", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def ids(errors):
    return sorted(e.id for e in errors)


@pytest.mark.no_broker
def test_settings_checks_pass_for_the_test_project():
    assert check_settings() == []


@pytest.mark.no_broker
@pytest.mark.parametrize(
    "overrides, expected_id, message",
    [
        ({"TRACKABLE_BROKER_URL": "nosuch://x"}, "trackable.E001", "The trackable broker URL 'nosuch://x' is unusable"),
        (
            {"TRACKABLE_BROKER_URL": "filesystem://", "TRACKABLE_QUEUE_DIR": None, "BASE_DIR": None},
            "trackable.E002",
            "The trackable broker is filesystem:// but no folder is set for it.",
        ),
        ({"TRACKABLE_TIME_ZONE": "Mars/Olympus"}, "trackable.E003", "Unknown time zone 'Mars/Olympus'"),
        ({"TRACKABLE_BATCH_SIZE": 0}, "trackable.E004", "TRACKABLE_BATCH_SIZE is 0; it must be a positive int."),
        ({"TRACKABLE_BATCH_SIZE": "10"}, "trackable.E004", "TRACKABLE_BATCH_SIZE is '10'; it must be a positive int."),
    ],
)
def test_settings_checks_name_the_problem(overrides, expected_id, message):
    with override_settings(**overrides):
        errors = check_settings()
    assert ids(errors) == [expected_id]
    assert errors[0].msg.startswith(message)


@pytest.mark.no_broker
def test_legacy_spelling_warns_in_checks():
    with override_settings(TRACKABLE_USER_AGENT_FILTERTING=True):
        errors = check_settings()
    assert ids(errors) == ["trackable.W001"]
    assert errors[0].hint == "Rename it to TRACKABLE_USER_AGENT_FILTERING."


@pytest.mark.no_broker
def test_demo_sets_up_folds_and_shows_rows(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TRACKABLE_TEST"))}
    env["TRACKABLE_DEMO_STATE_DIR"] = str(tmp_path)
    # Celery is an optional extra: the demo (and the core) must work without it.
    without_celery = (
        "import runpy, sys; sys.modules['celery'] = None; "
        f"sys.argv = [{str(ROOT / 'example' / 'manage.py')!r}, 'demo', '--no-server']; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    run = subprocess.run(
        [sys.executable, "-c", without_celery], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "Seeded 4 items and two weeks of traffic."
    assert lines[1].startswith("Initial fold: Folded ")
    assert "0 malformed set aside" in lines[1]
    daily = int(lines[2].split(": ")[1].split()[0])
    assert 4 <= daily <= 4 * 15  # four items, at most fifteen calendar days each
    assert (tmp_path / "db.sqlite3").exists()


@pytest.mark.no_broker
def test_every_setting_is_documented_with_its_default():
    import re

    from trackable.conf import DEFAULTS

    docs = [p.read_text() for p in (ROOT / "docs").glob("*.rst")]
    undocumented = []
    for name in DEFAULTS:
        documented = False
        for text in docs:
            for match in re.finditer(rf"^``TRACKABLE_{name}``\s*$", text, re.M):
                entry = text[match.end() : match.end() + 1500]
                following = re.search(r"^``TRACKABLE_", entry, re.M)
                documented |= "Default:" in (entry[: following.start()] if following else entry)
        if not documented:
            undocumented.append(f"TRACKABLE_{name}")
    assert undocumented == []
