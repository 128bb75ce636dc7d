#!/usr/bin/env python
"""The django-trackable demo: `python example/manage.py demo` migrates, seeds, folds and serves."""
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    sys.path.insert(1, str(here.parent))  # run from a clone without installing: trackable is beside example/
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
