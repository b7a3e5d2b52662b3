"""Where verdicts go besides the visual log: stdout (JSON lines) and MQTT for the line's PLC or MES.

Public face: ``Output``, ``decision_payload``, ``status_payload`` (``base``) and ``open_output``
(``registry``). Depends on ``core.sources`` (the source's state) and ``core.common``.
"""

from core.outputs.base import Output, decision_payload, status_payload
from core.outputs.registry import open_output

__all__ = ["Output", "decision_payload", "open_output", "status_payload"]
