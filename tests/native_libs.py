"""A real shared object whose dependency is gone: how Qt's xcb plugin looks on a box missing a library."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def plugin_missing(folder: Path, soname: str) -> Path:
    """Build ``folder/libqxcb.so`` linking ``soname``, then delete ``soname`` (skips without cc/ldd)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or shutil.which("ldd") is None:
        pytest.skip("needs a C compiler and ldd")
    (folder / "gone.c").write_text("int gone(void) { return 1; }\n")
    (folder / "plugin.c").write_text("int gone(void);\nint plugin(void) { return gone(); }\n")
    gone = folder / soname
    subprocess.run(
        [cc, "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(gone), str(folder / "gone.c")],
        check=True, capture_output=True,
    )  # fmt: skip
    plugin = folder / "libqxcb.so"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-o", str(plugin), str(folder / "plugin.c"), str(gone)],
        check=True, capture_output=True,
    )  # fmt: skip
    gone.unlink()
    return plugin
