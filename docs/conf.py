"""Sphinx configuration of the django-trackable documentation."""
import re
from pathlib import Path

project = "django-trackable"
author = "The django-trackable developers"
copyright = "2026, The django-trackable developers"
release = re.search(
    r'^__version__ = "([^"]+)"', (Path(__file__).parent.parent / "trackable" / "__init__.py").read_text(), re.M
).group(1)
version = release
extensions = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = ["_static"]
