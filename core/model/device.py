"""Where a model runs: the CUDA device when present, the cores this process may use."""

from __future__ import annotations

import os

from core.common.errors import UserError


def default_threads() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pick_device(requested: str | None = None) -> str:
    """``cuda`` when a GPU is present (or asked for), else ``cpu``."""
    import torch

    if requested and requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("CUDA was requested but no CUDA device is available; use --device cpu or auto")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"
