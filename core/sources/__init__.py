"""Where parts come from. Every source gives ``Part``s through one interface.

A source hands out a part with ``next_part`` and is told with ``acknowledge`` once the part's row
is committed; only then may it let go of the original (a hot-folder file moves out of the inbox
only after that). The backpressure policy is the source's own: a folder never drops anything (the
backlog waits in the inbox); a live camera keeps the newest frame and logs the others.
"""

from __future__ import annotations

from typing import Protocol

from core.types import Decision, Part


class Source(Protocol):
    description: str

    def next_part(self, timeout_s: float) -> Part | None:
        """The next part, waiting up to ``timeout_s``; None when none arrived."""
        ...

    def acknowledge(self, part: Part, decision: Decision) -> None:
        """The part's decision is committed: the source may release or move the original."""
        ...

    def close(self) -> None: ...


def open_source(spec: str) -> Source:
    """``hotfolder:DIR`` (more kinds come with the acquisition layer)."""
    kind, _, target = spec.partition(":")
    if kind == "hotfolder" and target:
        from pathlib import Path

        from core.sources.hotfolder import HotFolderSource

        return HotFolderSource(Path(target))
    raise ValueError(f"unknown source {spec!r}; use hotfolder:DIR")
