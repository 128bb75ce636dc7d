"""Errors a first-hour user meets name the fix: migrate, capture, a model instance; the demo's URL and stop."""
from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
from django.test import override_settings

from tests.test_quickstart import ROOT, blocks_of, new_project
from tests.testapp.models import Article
from trackable.exceptions import TrackableConnectionError
from trackable.messaging import send_increment_message

UNREACHABLE = {"TRACKABLE_BROKER_URL": "amqp://guest:guest@127.0.0.1:9//", "TRACKABLE_CONNECT_TIMEOUT": 0.5}


@pytest.mark.no_broker
@pytest.mark.django_db
@pytest.mark.usefixtures("direct_publish")  # the journal (the default) keeps events through outages
def test_broker_down_without_capture_names_the_setting():
    article = Article.objects.create(title="a")
    with override_settings(**UNREACHABLE), pytest.raises(TrackableConnectionError) as raised:
        send_increment_message(None, article, "impressions")
    assert str(raised.value).startswith("Could not publish to the trackable broker: ")
    assert str(raised.value).endswith(
        " To log this and carry on while the broker is down, set TRACKABLE_CAPTURE_CONNECTION_ERRORS = True "
        "(or TRACKABLE_JOURNAL = True to keep the events on disk and send them once it is back)."
    )


@pytest.mark.no_broker
@pytest.mark.parametrize(
    "obj, what",
    [(Article, "the class Article"), (None, "NoneType None"), (7, "int 7"), ("7", "str '7'")],
)
def test_tracking_something_that_is_not_an_instance_is_a_type_error(obj, what):
    with pytest.raises(TypeError) as raised:
        send_increment_message(None, obj, "impressions")
    assert str(raised.value) == f"Track a saved model instance (e.g. MyObject.objects.get(pk=...)), not {what}."


def _manage(project, *args):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "manage.py", *args], cwd=project, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.no_broker
def test_fold_and_status_before_migrate_say_run_migrate(tmp_path):
    project = new_project(tmp_path, with_admin=True)
    for lang, code in blocks_of("README.md"):  # the quickstart's files, but no makemigrations/migrate
        if lang == "python":
            with open(project / code.split("\n", 1)[0].split()[1], "a", encoding="utf-8") as f:
                f.write("\n" + code)
    sent = _manage(
        project, "shell", "-c", "from my_app.views import *; print(send_increment_message(None, MyObject(pk=1), 'impressions'))"
    )
    assert sent.stdout.strip().splitlines()[-1] == "True", sent.stderr
    tables = "django_content_type, trackable_foldedmessage, trackable_foldrun, my_app_myobjecttrackabledata"
    fold = _manage(project, "fold_trackable_messages")
    assert fold.returncode == 1
    assert f"The database has no table {tables} yet: run `python manage.py migrate` first." in fold.stderr
    assert "Traceback" not in fold.stderr
    status = _manage(project, "trackable_status")
    assert status.returncode == 1 and "Traceback" not in status.stderr
    assert status.stderr.strip().endswith(f"The database has no table {tables} yet: run `python manage.py migrate` first.")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has exited
        return f.read().split(") ", 1)[1][0] != "Z"


@pytest.mark.no_broker
def test_demo_prints_a_working_api_url_and_stops_its_fold_loop_on_sigterm(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TRACKABLE_TEST"))}
    env["TRACKABLE_DEMO_STATE_DIR"] = str(tmp_path)
    port = _free_port()
    demo = subprocess.Popen(
        [sys.executable, str(ROOT / "example" / "manage.py"), "demo", "--port", str(port), "--interval", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        while not any(line.startswith("A fold runs every") for line in lines):
            line = demo.stdout.readline()
            assert line, "the demo exited early:\n" + "".join(lines)
            lines.append(line)
        api_line = next(line for line in lines if line.startswith("JSON API: "))
        url = re.search(r"(http://\S+)", api_line).group(1)
        assert url.endswith("/series/?field=views") and "log in first" in api_line
        fold_pid = int(re.search(r"in process (\d+)\.", lines[-1]).group(1))
        body = _get_logged_in(f"http://127.0.0.1:{port}", url)
        assert body["field"] == "views" and body["total"] == sum(value for _, value in body["points"]) > 0
        assert _alive(fold_pid)
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(fold_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(fold_pid), "the fold loop outlived the demo"
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


def _get_logged_in(base: str, url: str) -> dict:
    """Log in to the demo's admin as the printed user, then GET `url` as JSON (waits for the server)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    deadline = time.monotonic() + 30
    while True:
        try:
            page = opener.open(f"{base}/admin/login/", timeout=5).read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": "admin", "password": "admin", "next": "/admin/"})
    request = urllib.request.Request(f"{base}/admin/login/", data=form.encode(), headers={"Referer": f"{base}/admin/login/"})
    opener.open(request, timeout=10).read()
    return json.loads(opener.open(url, timeout=10).read())
