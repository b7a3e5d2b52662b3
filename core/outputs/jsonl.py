"""One JSON line per part on standard output, for scripts and log collectors."""

from __future__ import annotations

import json
import logging
import sys
from typing import TextIO

from core.common.types import InspectedPart
from core.outputs.base import decision_payload
from core.sources.base import SourceStatus

log = logging.getLogger(__name__)


class JsonLinesOutput:
    name = "jsonl"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self.failed = 0

    def publish(self, item: InspectedPart) -> None:
        if self.failed:
            return  # the reader went away; the log still has every decision
        stream = self._stream or sys.stdout
        try:
            print(json.dumps(decision_payload(item), ensure_ascii=False), file=stream, flush=True)
        except (OSError, ValueError) as exc:  # a closed pipe, a closed stream
            self.failed += 1
            log.error("stdout output stopped: %s", exc)

    def status(self, status: SourceStatus) -> None:
        pass  # status lines go to stderr (see core.station.runtime.run_headless), not into the data stream

    def close(self) -> None:
        pass
