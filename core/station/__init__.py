"""The station: source -> inspector -> visual log, every part exactly one row, and its benchmark.

``runtime`` (``StationRuntime``, ``build_runtime``, ``run_headless``), ``bench`` (``inspector
bench``: the station's pipeline timed stage by stage). Depends on ``core.sources``,
``core.outputs``, ``core.storage`` and ``core.inference``.
"""

from core.common.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {"StationRuntime": "runtime", "build_runtime": "runtime", "run_headless": "runtime"},
)
