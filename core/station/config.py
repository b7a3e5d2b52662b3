"""The station's configuration: one validated model for everything a station run depends on.

``StationConfig`` is read from a JSON file (``StationConfig.load``), then environment variables
``INSPECTOR_<FIELD>`` (``INSPECTOR_THRESHOLD=0.4``, ``INSPECTOR_SOURCE_OPTIONS='{"settle_s": 1}'``,
``INSPECTOR_OUTPUTS=jsonl,mqtt://broker``) and last explicit overrides (command-line flags) win.
Every value is checked here, once, before anything is opened: a source option that its kind of
source does not take, an unknown source kind or a back-off that shrinks is refused with its name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.common.errors import UserError
from core.sources.base import parse_spec

SCHEMA_VERSION = 1
ENV_PREFIX = "INSPECTOR_"

SOURCE_KINDS = ("hotfolder", "camera", "video", "genicam")
_HOT_FOLDER_OPTIONS = frozenset(
    {
        "settle_s",
        "scan_interval_s",
        "watch",
        "prefetch",
        "truncated_grace_s",
        "max_bytes",
        "processed_dir",
        "rejected_dir",
        "rejected_watch_s",
        "duplicate_alarm_after",
    }
)
_LIVE_OPTIONS = frozenset(
    {"trigger", "queue_size", "frame_timeout_s", "stale_after_s", "reconnect_min_s", "reconnect_max_s"}
)
# The options each kind of source takes (see the constructors in core.sources).
OPTIONS_BY_KIND: dict[str, frozenset[str]] = {
    "hotfolder": _HOT_FOLDER_OPTIONS,
    "camera": _LIVE_OPTIONS | {"open_timeout_s"},
    "video": frozenset({"trigger"}),
    "genicam": _LIVE_OPTIONS,
}


class SourceOptions(BaseModel):
    """Settings of the source; only those set are passed, and only to a source that takes them."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Source options")

    # hot folder
    settle_s: float | None = Field(
        None, ge=0, title="Settle time (s)",
        description=(
            "Hot folder: a file is taken once its size and time stamp were stable this long "
            "(default 0.5; a file renamed into the inbox is taken at once)."
        ),
    )  # fmt: skip
    scan_interval_s: float | None = Field(
        None, gt=0, title="Rescan interval (s)",
        description="Hot folder: the inbox is listed this often (default 0.25; watch events are only hints).",
    )  # fmt: skip
    watch: bool | None = Field(
        None, title="Watch events",
        description="Hot folder: use file-system events besides the rescan (default: not on network shares).",
    )  # fmt: skip
    prefetch: int | None = Field(
        None,
        ge=1,
        title="Read-ahead",
        description="Hot folder: files read and decoded ahead of the station (default 4).",
    )
    truncated_grace_s: float | None = Field(
        None, ge=0, title="Truncated-file grace (s)",
        description=(
            "Hot folder: a file that decodes as cut short (or is empty) is given this long to be "
            "completed before it is rejected, again after every change (default 5; longer than "
            "the longest pause of the camera's writer)."
        ),
    )  # fmt: skip
    max_bytes: int | None = Field(
        None, ge=1, title="Largest file (bytes)", description="Hot folder: larger files are rejected unread."
    )
    rejected_watch_s: float | None = Field(
        None, ge=0, title="Watch rejected files (s)",
        description=(
            "Hot folder: a file rejected as unreadable is watched this long; when it grows (its "
            "writer had only paused) it comes back to the inbox and is inspected (default 600; 0: off)."
        ),
    )  # fmt: skip
    duplicate_alarm_after: int | None = Field(
        None, ge=0, title="Duplicates before an alarm",
        description=(
            "Hot folder: this many files in a row with the bytes of a part already inspected "
            "raise an alarm, e.g. a camera resending a frozen frame (default 3; 0: never)."
        ),
    )  # fmt: skip
    processed_dir: Path | None = Field(
        None,
        title="Processed folder",
        description="Hot folder: where inspected files go (default inbox/processed).",
    )
    rejected_dir: Path | None = Field(
        None,
        title="Rejected folder",
        description="Hot folder: where unreadable files go (default inbox/rejected).",
    )
    # cameras
    trigger: Literal["presence", "every-frame"] | None = Field(
        None, title="Trigger", description="Cameras and videos: which frames become parts (default presence)."
    )
    queue_size: int | None = Field(
        None, ge=1, title="Queue size",
        description="Live cameras: parts waiting for the station; beyond it the oldest is recorded as not inspected.",
    )  # fmt: skip
    frame_timeout_s: float | None = Field(
        None, gt=0, title="Frame time-out (s)", description="Live cameras: no frame this long means offline."
    )
    stale_after_s: float | None = Field(
        None, ge=0, title="Stale after (s)",
        description="Live cameras: the same picture this long means a frozen camera (0: never).",
    )  # fmt: skip
    reconnect_min_s: float | None = Field(
        None,
        gt=0,
        title="First reconnect wait (s)",
        description="Live cameras: the first wait before reconnecting.",
    )
    reconnect_max_s: float | None = Field(
        None,
        gt=0,
        title="Longest reconnect wait (s)",
        description="Live cameras: the reconnect wait doubles up to this.",
    )
    open_timeout_s: float | None = Field(
        None,
        gt=0,
        title="Open time-out (s)",
        description="Network cameras: how long opening the stream may take.",
    )

    def given(self) -> dict[str, Any]:
        """The options that were set, as keyword arguments."""
        return self.model_dump(exclude_none=True)


class StationConfig(BaseModel):
    """Everything a station run depends on: source, model, log, run loop and outputs."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Station configuration")

    schema_version: int = Field(
        SCHEMA_VERSION, title="Schema version", description="Version of this configuration schema."
    )
    source: str = Field(
        title="Source",
        description="Where parts come from: hotfolder:DIR, camera:INDEX_OR_URL, video:FILE or genicam:CTI[#SERIAL].",
    )
    model: Path = Field(title="Model bundle", description="The model bundle folder.")
    db_url: str | None = Field(
        None,
        title="Visual log URL",
        description="SQLAlchemy URL of the visual log (default: SQLite in the data dir).",
    )
    media_root: Path | None = Field(
        None,
        title="Media folder",
        description="Where images and heatmaps are stored (default: in the data dir).",
    )
    station_name: str = Field(
        "station-1", min_length=1, title="Station name", description="Recorded with every decision."
    )
    device: str = Field("auto", title="Device", description="auto, cpu, cuda or cuda:N.")
    threshold: float | None = Field(
        None, ge=0, le=1, title="Threshold",
        description="Bad-probability threshold at start (default: the model's); changeable at run time.",
    )  # fmt: skip
    backend: Literal["auto", "torch", "onnx"] = Field(
        "auto", title="Backend", description="auto (ONNX Runtime on a CPU when exported), torch or onnx."
    )
    threads: int | None = Field(
        None, ge=1, title="Inference threads", description="CPU threads for inference."
    )
    max_parts: int | None = Field(
        None,
        ge=1,
        title="Parts to inspect",
        description="Stop after this many parts (smoke tests, batch runs).",
    )
    max_batch: int = Field(
        8,
        ge=1,
        title="Largest batch",
        description="Parts already waiting are inspected together, up to this many.",
    )
    background_writer: bool = Field(
        True, title="Writer thread",
        description="Write rows on a writer thread with group commit, overlapping the next inspection.",
    )  # fmt: skip
    source_options: SourceOptions = Field(
        default_factory=SourceOptions,
        title="Source options",
        description="Settings of the source (see its kind).",
    )
    outputs: tuple[str, ...] = Field(
        ("jsonl",), title="Outputs",
        description="Headless: where decisions go besides the log: jsonl (stdout), mqtt://HOST[:PORT][/TOPIC].",
    )  # fmt: skip
    summary_s: float = Field(
        10.0,
        ge=0,
        title="Summary interval (s)",
        description="Headless: a summary line on stderr this often (0: off).",
    )
    backoff_first_s: float = Field(
        0.5, gt=0, title="First back-off (s)",
        description="After a failure (storage, start, inspection) the first wait before trying again.",
    )  # fmt: skip
    backoff_max_s: float = Field(
        10.0,
        gt=0,
        title="Longest back-off (s)",
        description="The wait doubles after each failure up to this.",
    )
    status_poll_s: float = Field(
        0.2,
        gt=0,
        le=5,
        title="Status poll interval (s)",
        description="The source's state is read this often.",
    )
    expected_part_interval_s: float = Field(
        60.0,
        ge=0,
        title="Expected part interval (s)",
        description="A 'no parts' alarm when no part came for this long while the source is online (0: off).",
    )
    bad_run_length: int = Field(
        5,
        ge=0,
        title="Bad parts in a row",
        description="An alarm after this many bad parts in a row (0: off).",
    )
    disk_floor_mb: float = Field(
        500.0,
        ge=0,
        title="Disk floor (MB)",
        description="A 'disk nearly full' alarm when the log's media or database disk has less free (0: off).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> StationConfig:
        kind, target = parse_spec(self.source)
        if kind not in SOURCE_KINDS:
            raise ValueError(
                f"unknown source kind {kind!r} in {self.source!r}; use one of {', '.join(SOURCE_KINDS)}"
            )
        if not target:
            raise ValueError(
                f"source {self.source!r} names no target; e.g. hotfolder:/data/inbox or camera:0"
            )
        foreign = sorted(set(self.source_options.given()) - OPTIONS_BY_KIND[kind])
        if foreign:
            raise ValueError(f"a {kind} source does not take {', '.join(foreign)}")
        if self.backoff_max_s < self.backoff_first_s:
            raise ValueError("backoff_max_s must not be below backoff_first_s")
        if self.schema_version > SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {self.schema_version} is newer than this program's {SCHEMA_VERSION}"
            )
        return self

    @property
    def source_kind(self) -> str:
        return parse_spec(self.source)[0]

    def source_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``open_source``: the options that were set."""
        return self.source_options.given()

    @classmethod
    def load(
        cls,
        path: Path | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> StationConfig:
        """The configuration from a JSON file, then ``INSPECTOR_<FIELD>`` variables, then overrides.

        Args:
            path: A JSON file of fields (optional).
            environ: The environment to read (default ``os.environ``).
            overrides: Values that win over both (flags given on the command line); None means
                not given.

        Raises:
            UserError: The file cannot be read or is not a JSON object.
            pydantic.ValidationError: A value breaks the schema.
        """
        values: dict[str, Any] = {}
        if path is not None:
            try:
                loaded = json.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise UserError(f"cannot read the station configuration {path}: {exc}") from exc
            if not isinstance(loaded, dict):
                raise UserError(f"{path}: a station configuration is a JSON object of fields")
            values.update(loaded)
        values.update(env_values(os.environ if environ is None else environ))
        for name, value in overrides.items():
            if value is None:
                continue
            if name == "source_options" and isinstance(value, Mapping):
                merged = dict(values.get("source_options") or {})
                merged.update({k: v for k, v in value.items() if v is not None})
                value = merged
            values[name] = value
        return cls.model_validate(values)


def env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """``INSPECTOR_<FIELD>`` variables as field values (pydantic converts the strings).

    A JSON object or list is parsed (``INSPECTOR_SOURCE_OPTIONS='{"settle_s": 1}'``); ``outputs``
    also takes a comma-separated list. An empty variable is ignored.
    """
    values: dict[str, Any] = {}
    for name in StationConfig.model_fields:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is None or not raw.strip():
            continue
        text = raw.strip()
        value: Any = text
        if text[0] in "[{":
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise UserError(f"{ENV_PREFIX}{name.upper()} is not valid JSON: {exc}") from exc
        elif name == "outputs":
            value = [part.strip() for part in text.split(",") if part.strip()]
        values[name] = value
    return values
