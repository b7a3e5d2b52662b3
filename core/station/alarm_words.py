"""Alarms in the operator's words: what happened and what to do, never an exception's text.

The run loop keeps the technical one-liner (``AlarmRaised.message``: the headless station prints
it, the log keeps it) and adds these two lines for the window, chosen by the alarm's kind and,
for failures, by the exception's type.
"""

from __future__ import annotations

from core.station.events import AlarmKind

_WORDS: dict[AlarmKind, tuple[str, str]] = {
    AlarmKind.SOURCE: (
        "Source offline: no parts can arrive",
        "Check the camera cable or the inbox folder; the station reconnects by itself.",
    ),
    AlarmKind.SOURCE_WARNING: (
        "The source needs attention",
        "Look at the inbox: files are repeated or cannot be moved.",
    ),
    AlarmKind.STORAGE: (
        "The visual log cannot be written: parts wait at the source",
        "Check the database server or free disk space; inspection resumes by itself.",
    ),
    AlarmKind.STATION: (
        "The station stopped inspecting and is restarting",
        "If this repeats, call the supervisor (the details are in the log).",
    ),
    AlarmKind.MODEL: (
        "The model is missing or damaged: parts are not inspected",
        "Ask the supervisor to install the model bundle (check it with: inspector doctor --model PATH).",
    ),
    AlarmKind.NO_PARTS: (
        "No parts are arriving",
        "Check that the line runs and that the camera or feeder delivers.",
    ),
    AlarmKind.DISK: (
        "The disk is nearly full",
        "Free space on the media / log disk or ask the supervisor to prune old records.",
    ),
    AlarmKind.BAD_RUN: (
        "Many bad parts in a row",
        "Stop and check the line or the camera (lighting, lens, part position).",
    ),
}


def words_for(kind: AlarmKind) -> tuple[str, str]:
    """(what happened, what to do) for an alarm of ``kind``."""
    return _WORDS[kind]


def words_for_failure(kind: AlarmKind, exc: BaseException) -> tuple[str, str]:
    """(what happened, what to do) for a failure: a refused or missing model says so."""
    from core.model.bundle import BundleError

    if isinstance(exc, BundleError) or (isinstance(exc, FileNotFoundError) and "model" in str(exc).lower()):
        return _WORDS[AlarmKind.MODEL]
    return _WORDS[kind]
