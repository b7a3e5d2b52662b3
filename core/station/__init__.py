"""The station: source -> inspector -> visual log, every part exactly one row, and its benchmark.

``config`` (``StationConfig``: every setting, validated once), ``runtime`` (``StationRuntime``:
one step at a time; ``build_runtime``), ``writer`` (rows on a writer thread, group commit),
``loop`` (``StationLoop``: the one run loop: start, back-off, restart, source status, alarms),
``events`` (what the loop emits), ``headless`` (``run_headless``: the loop's events as text and
outputs), ``bench`` (``inspector bench``: the station's pipeline timed stage by stage). Depends
on ``core.sources``, ``core.outputs``, ``core.storage`` and ``core.inference``.
"""

from core.common.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "StationConfig": "config",
        "StationRuntime": "runtime",
        "build_runtime": "runtime",
        "StationLoop": "loop",
        "LoopSettings": "loop",
        "StationInfo": "events",
        "run_headless": "headless",
    },
)
