"""The built-in demo line: a demo model trained once on generated parts, and a hot folder fed with them.

``line`` (``ensure_demo_model``, ``demo_inbox``, ``DemoFeeder``). Depends on ``core.training`` and
``core.synth``.
"""

from core.common.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__, {"ensure_demo_model": "line", "demo_inbox": "line", "DemoFeeder": "line"}
)
