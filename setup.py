"""Packaging for django-trackable (metadata lives in setup.cfg-free form here)."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "trackable" / "__init__.py").read_text(), re.M).group(1)

setup(
    name="django-trackable",
    version=VERSION,
    description="Out-of-band, exactly-once tracking of per-object counters for Django, folded from a Kombu queue.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    packages=find_packages(include=["trackable", "trackable.*"]),
    include_package_data=True,
    package_data={"trackable": ["fixtures/*.json", "templates/**/*", "static/**/*", "py.typed"]},
    python_requires=">=3.10",
    install_requires=[
        "Django>=5.2,<6.2",
        "kombu>=5.7",
        "google-re2>=1.1",  # spider patterns: linear-time matching, no pattern can stall a request
        "ua-parser>=1.0",  # breakdowns by browser, platform and device (trackable.dimensions)
    ],
    extras_require={
        # django-celery-beat (the DatabaseScheduler) is optional and, at 2.9, supports Django < 6.1 only:
        # install it yourself when you want it; plain `celery beat` needs nothing more.
        "celery": ["celery>=5.7"],
        # kombu's own extra: the versions of redis (and packaging) its Redis transport needs.
        "redis": ["kombu[redis]>=5.7"],
        "postgres": ["psycopg[binary]>=3.1"],
        "spiders": ["crawler-user-agents>=1.0"],
        "re2": [],  # kept so that django-trackable[re2] still installs; google-re2 is now required
        "uniques": ["datasketches>=5.0"],
        "test": [
            "datasketches>=5.0",
            "celery>=5.7",
            "kombu[redis]>=5.7",
            "psycopg[binary]>=3.1",
            "crawler-user-agents>=1.0",
            "google-re2>=1.1",
            "pytest>=8",
            "pytest-django>=4.8",
            "pytest-timeout>=2.2",
            "hypothesis>=6.100",
            "selenium>=4.20",
            "gunicorn>=21.2",
        ],
        "browser": ["selenium>=4.20"],
        "docs": ["sphinx>=7"],
        "lint": ["ruff>=0.15", "mypy>=1.18", "django-stubs>=5.2", "celery-types>=0.23", "typing-extensions>=4.6"],
        "bench": ["datasketches>=5.0", "kombu[redis]>=5.7", "psycopg[binary]>=3.1", "matplotlib>=3.7", "gunicorn>=21.2", "django-hitcount>=1.3.5"],
    },
    classifiers=[
        "Framework :: Django",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Framework :: Django :: 6.1",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Typing :: Typed",
        "License :: OSI Approved :: BSD License",
    ],
)
