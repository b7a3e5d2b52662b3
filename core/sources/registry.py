"""Opening a source from its spec string (``hotfolder:DIR``, ``camera:...``, ``video:...``, ``genicam:...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.sources.base import ContentLookup, Source, parse_spec


def open_source(spec: str, *, seen: ContentLookup | None = None, **options: Any) -> Source:
    """Open a source from its spec string.

    Args:
        spec: ``hotfolder:DIR``, ``camera:INDEX_OR_URL``, ``video:FILE`` or ``genicam:CTI[#SERIAL]``.
        seen: For hot folders: earlier decisions with a given content hash, so a file already in
            the log (a duplicate, or one whose move was cut short by a crash) gets no second row.
        options: Passed to the source's constructor (e.g. ``settle_s``, ``trigger``, ``queue_size``).

    Raises:
        ValueError: Unknown kind or missing target.
    """
    kind, target = parse_spec(spec)
    if not target:
        raise ValueError(f"source {spec!r} names no target; e.g. hotfolder:/data/inbox or camera:0")
    if kind == "hotfolder":
        from core.sources.hotfolder import HotFolderSource

        for camera_only in ("trigger", "queue_size"):  # a folder has no frames to trigger on
            options.pop(camera_only, None)
        return HotFolderSource(Path(target), seen=seen, **options)
    if kind in ("camera", "video"):
        from core.sources.camera import CameraSource

        return CameraSource.from_spec(kind, target, **options)
    if kind == "genicam":
        from core.sources.genicam import GenICamSource

        return GenICamSource.from_spec(target, **options)
    raise ValueError(
        f"unknown source {spec!r}; use hotfolder:DIR, camera:INDEX_OR_URL, video:FILE or genicam:CTI"
    )
