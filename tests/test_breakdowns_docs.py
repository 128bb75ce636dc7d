"""docs/breakdowns.rst's blocks, pasted in order into a fresh project, give the numbers the page shows."""
from __future__ import annotations

import pytest

from tests.test_quickstart import ROOT, new_project, quickstart_broker, rst_blocks, run  # noqa: F401 - a fixture

pytestmark = pytest.mark.no_broker

DRIVER = """
from django.test import Client
from django.test.utils import setup_test_environment

from my_app.models import Item

setup_test_environment()  # lets the test client's host in
item = Item.objects.create(title="Tide tables")
client = Client()
for referrer in ["https://www.bing.com/search?q=tide+tables", "https://www.bing.com/search?q=Tide%20Tables",
                 "https://news.ycombinator.com/item?id=1", None]:
    extra = {"HTTP_REFERER": referrer} if referrer else {}
    assert client.get(f"/items/{item.pk}/", **extra).status_code == 200
"""


def paste(project, blocks):
    """Apply the blocks in order (console commands run where they appear); return the shell blocks."""
    shells = []
    for lang, code in blocks:
        first = code.split("\n", 1)[0].removeprefix("# ").split(" ", 1)[0]
        if lang == "python" and first == "shell":
            shells.append(code)
        elif lang == "python":
            with open(project / first, "a", encoding="utf-8") as f:
                f.write("\n" + code)
        elif lang == "console":
            for line in code.splitlines():
                if line.startswith("python manage.py ") and "fold_trackable_messages" not in line:
                    run(project, *line.split("#", 1)[0].split()[1:])
    return shells


def test_the_two_scenarios_run_when_pasted(tmp_path, quickstart_broker):  # noqa: F811
    project = new_project(tmp_path, with_admin=True)
    if quickstart_broker:
        with open(project / "proj" / "settings.py", "a", encoding="utf-8") as f:
            f.write("\n".join(f"{name} = {value!r}" for name, value in quickstart_broker.items()) + "\n")
        quickstart_broker["project"] = project  # the fixture has it delete its queues at the end
    shells = paste(project, rst_blocks((ROOT / "docs" / "breakdowns.rst").read_text(encoding="utf-8")))
    assert run(project, "manage.py", "check").strip() == "System check identified no issues (0 silenced)."
    run(project, "manage.py", "shell", "-c", DRIVER)
    run(project, "manage.py", "fold_trackable_messages")
    answers = []
    for code in shells:
        *body, last = code.rstrip("\n").split("\n")
        answers.append(run(project, "manage.py", "shell", "-c", "\n".join(body) + f"\nprint({last})").strip().splitlines()[-1])
    assert answers == [
        "[ValueEntry(value='/items/1', total=4, share=1.0)]",
        "[ValueEntry(value='bing.com', total=2, share=0.5), ValueEntry(value='', total=1, share=0.25), "
        "ValueEntry(value='news.ycombinator.com', total=1, share=0.25)]",
        "[ValueEntry(value='', total=2, share=0.5), ValueEntry(value='tide tables', total=2, share=0.5)]",
    ]
