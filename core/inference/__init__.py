"""Scoring parts on the line: the ``Inspector`` over a torch or ONNX Runtime backend, and the export.

``inspector`` (``Inspector``: score, verdict and heatmap in one pass), ``backends`` (torch, ONNX
Runtime; ``resolve_backend``), ``onnx_bundle`` (reading a bundle's hash-checked ONNX export, no
torch), ``export`` (writing it, checked against PyTorch). Depends on ``core.model``.
"""

from core.common.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Inspector": "inspector",
        "resolve_backend": "backends",
        "has_onnx": "onnx_bundle",
        "load_onnx": "onnx_bundle",
        "export_bundle": "export",
    },
)
