"""The README's and docs/quickstart.rst's blocks, pasted in order into a fresh project, work as written.

Each Python block names its file on its first line (``# my_app/views.py``) and is appended to it;
each ``python manage.py`` line of a console block is run where it appears. Then three requests to the
quickstart's view, a fold, and the quickstart's own read-back must show one row of 3 impressions.
"""
import contextlib
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.no_broker


def markdown_blocks(text: str) -> list[tuple[str, str]]:
    """Return the (language, code) of each fenced block of a Markdown text."""
    return [(lang, code) for lang, code in re.findall(r"^```(\w+)\n(.*?)^```", text, re.M | re.S)]


def rst_blocks(text: str) -> list[tuple[str, str]]:
    """Return the (language, code) of each ``.. code-block::`` of a reStructuredText text."""
    blocks = []
    for match in re.finditer(r"^\.\. code-block:: (\w+)\n\n((?:(?:   .*)?\n)+)", text, re.M):
        lines = match.group(2).rstrip("\n").split("\n")
        blocks.append((match.group(1), "\n".join(line[3:] for line in lines) + "\n"))
    return blocks


def blocks_of(document: str) -> list[tuple[str, str]]:
    text = (ROOT / document).read_text(encoding="utf-8")
    return markdown_blocks(text) if document.endswith(".md") else rst_blocks(text)


def run(project: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, *args], cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def new_project(tmp_path: Path, *, with_admin: bool) -> Path:
    project = tmp_path / "site"
    project.mkdir()
    run(project, "-m", "django", "startproject", "proj", ".")
    run(project, "manage.py", "startapp", "my_app")
    if not with_admin:
        settings, urls = project / "proj" / "settings.py", project / "proj" / "urls.py"
        settings.write_text(re.sub(r"""\n\s*["']django\.contrib\.admin["'],""", "", settings.read_text()))
        urls.write_text(
            re.sub(r"""\n\s*path\(["']admin/["'], admin\.site\.urls\),|from django\.contrib import admin""", "", urls.read_text())
        )
        assert "contrib.admin" not in settings.read_text() and "admin.site" not in urls.read_text()
    return project


def paste(project: Path, blocks: list[tuple[str, str]]) -> tuple[list[str], str]:
    """Apply the blocks in order; return the manage.py command lines and the shell block."""
    commands, shell = [], ""
    for lang, code in blocks:
        if lang == "python":
            target = code.split("\n", 1)[0].removeprefix("# ").split(" ", 1)[0]
            if target == "shell":
                shell = code
                continue
            assert target.endswith(".py"), f"a Python block must name its file on its first line: {code[:60]!r}"
            with open(project / target, "a", encoding="utf-8") as f:
                f.write("\n" + code)
        elif lang == "console":
            for line in code.splitlines():
                if line.startswith("python manage.py "):
                    command = line.split("#", 1)[0].split()[1:]
                    commands.append(" ".join(command))
                    run(project, *command)
    return commands, shell


@pytest.fixture
def quickstart_broker():
    """Yield the broker settings of the throwaway project: {} (embedded) or the run's RabbitMQ/Redis.

    A test that made its project puts its folder under the "project" key: the project then deletes its
    own queues (every data model the pasted docs registered, and the dead-letter queue), so a run
    leaves none behind on the broker.
    """
    if django_settings.TEST_BROKER == "filesystem":
        yield {}
        return
    url, prefix = django_settings.TRACKABLE_BROKER_URL, f"trackable-quickstart-{uuid.uuid4().hex[:8]}"
    settings = {"TRACKABLE_BROKER_URL": url, "TRACKABLE_QUEUE_PREFIX": prefix}
    yield settings
    if "project" in settings:
        with contextlib.suppress(AssertionError):  # a project the test could not finish may not load
            run(settings["project"], "manage.py", "shell", "-c", DELETE_QUEUES)


DELETE_QUEUES = """
from trackable import transport
from trackable.sites import site
conn = transport.connection()
try:
    channel = conn.channel()
    for queue in [*(transport.queue_for(dm._meta.label_lower) for dm in site.data_models()), transport.dead_letter_queue()]:
        try:
            queue(channel).delete()
        except conn.channel_errors:  # never declared
            channel = conn.channel()
finally:
    conn.release()
"""


DRIVER = """
from django.test import RequestFactory
from my_app.models import MyObject
from my_app.views import my_object_detail

my_object = MyObject.objects.create(title="First")
for _ in range(3):
    assert my_object_detail(RequestFactory().get("/"), my_object.pk).status_code == 200
"""


@pytest.mark.parametrize(
    "document, with_admin",
    [("README.md", True), ("docs/quickstart.rst", True), ("README.md", False)],
    ids=["readme", "docs", "readme-without-admin"],
)
def test_quickstart_blocks_run_when_pasted_in_order(tmp_path, document, with_admin, quickstart_broker):
    project = new_project(tmp_path, with_admin=with_admin)
    if quickstart_broker:  # the PostgreSQL + RabbitMQ/Redis environments: the same project on that broker
        with open(project / "proj" / "settings.py", "a", encoding="utf-8") as f:
            f.write("\n".join(f"{name} = {value!r}" for name, value in quickstart_broker.items()) + "\n")
        quickstart_broker["project"] = project  # the fixture has it delete its queues at the end
    commands, shell = paste(project, blocks_of(document))
    assert commands[:2] == ["manage.py makemigrations my_app", "manage.py migrate"]
    assert "manage.py fold_trackable_messages" in commands
    assert run(project, "manage.py", "check").strip() == "System check identified no issues (0 silenced)."
    run(project, "manage.py", "shell", "-c", DRIVER)
    if not quickstart_broker:  # the default embedded broker: the journal relayed the 3 events as queue files
        assert list((project / "trackable-queue").glob("*.trackable.my_app.myobjecttrackabledata.msg"))
    run(project, "manage.py", "fold_trackable_messages")
    if document.endswith(".rst"):
        *body, last = shell.rstrip("\n").split("\n")
        read_back = "\n".join(body) + f"\nprint([row['impressions'] for row in {last}])"
    else:
        read_back = (
            "from my_app.trackables import MyObjectTrackableData as D\n"
            "print(list(D.objects.values_list('impressions', flat=True)))"
        )
    assert run(project, "manage.py", "shell", "-c", read_back).strip().splitlines()[-1] == "[3]"
