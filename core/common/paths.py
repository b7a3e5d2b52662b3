"""Every path on disk that the product uses comes from this module.

``INSPECTOR_HOME`` overrides the per-user data directory (tests, Docker, several stations on one
machine); otherwise the platform's user data directory is used.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_path


def data_home() -> Path:
    """Root of everything the station writes: the log, media files, models, the demo."""
    override = os.environ.get("INSPECTOR_HOME")
    root = Path(override).expanduser() if override else user_data_path("inspector", appauthor=False)
    root.mkdir(parents=True, exist_ok=True)
    return root


def default_db_path() -> Path:
    return data_home() / "inspector.sqlite"


def default_db_url() -> str:
    return f"sqlite:///{default_db_path()}"


def media_root() -> Path:
    """Images and heatmaps of the visual log; the database stores paths relative to this."""
    path = data_home() / "media"
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    path = data_home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def demo_dir() -> Path:
    """The built-in demo: generated parts, the demo hot folder and the cached demo model."""
    path = data_home() / "demo"
    path.mkdir(parents=True, exist_ok=True)
    return path
