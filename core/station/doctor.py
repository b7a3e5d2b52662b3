"""``inspector doctor``: is this machine ready to run the station? One check per line.

Each check gives a ``Check``: ``ok``, ``WARN`` (the station runs, but something should be looked at)
or ``FAIL`` (the station would not start, or would not inspect), what is wrong and how to fix it.
Here: the runtime (Python, torch, ONNX Runtime, OpenCV, Qt and its system libraries), which
needs no settings. What the station opens (source, visual log, media disk, model) is checked in
``core.station.doctor_station``.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_PYTHON = (3, 11)

# The system libraries that Qt's xcb platform plugin (the window on X11) loads, by soname, and the
# Debian/Ubuntu package that ships each. PySide6's wheels bundle Qt itself but not these.
APT_PACKAGES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb.so.1": "libxcb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libXau.so.6": "libxau6",
    "libXdmcp.so.6": "libxdmcp6",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libOpenGL.so.0": "libopengl0",
    "libGLdispatch.so.0": "libglvnd0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libwayland-egl.so.1": "libwayland-egl1",
    "libpng16.so.16": "libpng16-16",
    "libz.so.1": "zlib1g",
    "libexpat.so.1": "libexpat1",
}


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "WARN"  # the station runs, but this should be looked at
    FAIL = "FAIL"  # the station would not start or not inspect


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One check's result: what was checked, how it went, what is wrong and how to fix it."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        fix = f"; fix: {self.fix}" if self.fix else ""
        return f"{self.status.value:<4}  {self.name}: {self.detail}{fix}"


def exit_status(checks: Iterable[Check]) -> int:
    """1 when any check failed, else 0."""
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception (a database driver's own, when wrapped) as one line of at most ``limit``."""
    text = " ".join(str(getattr(exc, "orig", None) or exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------- the runtime


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Check:
    shown = ".".join(str(n) for n in version)
    if tuple(version[:2]) >= MIN_PYTHON:
        return Check(name="python", status=Status.OK, detail=f"Python {shown} ({sys.executable})")
    need = ".".join(str(n) for n in MIN_PYTHON)
    return Check(
        name="python",
        status=Status.FAIL,
        detail=f"Python {shown} is too old; the station needs {need} or newer",
        fix=f"install Python {need}+ and make the virtual environment again with it",
    )


def check_torch() -> Check:
    """PyTorch: optional on a station that runs ONNX exports; its version, CUDA and the GPU."""
    if importlib.util.find_spec("torch") is None:
        return Check(
            name="torch",
            status=Status.OK,
            detail="not installed: the station runs ONNX exports on ONNX Runtime; training, "
            "export and Grad-CAM reviews need it (pip install 'inspector[train]')",
        )
    try:
        torch: Any = importlib.import_module("torch")
    except Exception as exc:  # a broken wheel: missing CUDA libraries, ABI mismatch
        return Check(
            name="torch",
            status=Status.FAIL,
            detail=f"installed but does not import: {one_line(exc)}",
            fix="install it again (make setup, or pip install --force-reinstall the pinned torch wheel)",
        )
    cuda_build = torch.version.cuda
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
        return Check(
            name="torch", status=Status.OK, detail=f"torch {torch.__version__}, CUDA {cuda_build}, GPU {gpu}"
        )
    if cuda_build and shutil.which("nvidia-smi"):
        return Check(
            name="torch",
            status=Status.WARN,
            detail=f"torch {torch.__version__} (CUDA {cuda_build}) sees no GPU although an NVIDIA "
            "driver is installed: inference runs on the CPU",
            fix="check nvidia-smi; the driver may be older than CUDA "
            f"{cuda_build} needs, or the device is not visible (CUDA_VISIBLE_DEVICES, container flags)",
        )
    return Check(name="torch", status=Status.OK, detail=f"torch {torch.__version__}, no GPU: CPU")


def check_onnxruntime(*, torch_installed: bool) -> Check:
    """ONNX Runtime and its providers; without it (and without torch) no model can run."""
    if importlib.util.find_spec("onnxruntime") is None:
        return Check(
            name="onnxruntime",
            status=Status.WARN if torch_installed else Status.FAIL,
            detail="not installed"
            + (": models run on torch only" if torch_installed else ", nor is torch: no model can run"),
            fix="pip install onnxruntime (or onnxruntime-gpu for a GPU)",
        )
    try:
        ort: Any = importlib.import_module("onnxruntime")
        providers = list(ort.get_available_providers())
    except Exception as exc:
        return Check(
            name="onnxruntime",
            status=Status.FAIL,
            detail=f"installed but does not import: {one_line(exc)}",
            fix="pip install --force-reinstall onnxruntime",
        )
    return Check(
        name="onnxruntime",
        status=Status.OK,
        detail=f"onnxruntime {ort.__version__}, providers {', '.join(providers)}",
    )


def check_opencv() -> Check:
    """OpenCV (decoding, cameras): the headless build, with FFmpeg for network cameras and videos."""
    try:
        cv2: Any = importlib.import_module("cv2")
    except Exception as exc:
        return Check(
            name="opencv",
            status=Status.FAIL,
            detail=f"cv2 does not import: {one_line(exc)}",
            fix="pip install --force-reinstall opencv-python-headless",
        )
    ffmpeg = re.search(r"FFMPEG:\s*YES", cv2.getBuildInformation()) is not None
    detail = f"OpenCV {cv2.__version__}, FFmpeg {'yes' if ffmpeg else 'no (no network cameras or videos)'}"
    if (Path(cv2.__file__).parent / "qt" / "plugins").is_dir():
        return Check(
            name="opencv",
            status=Status.WARN,
            detail=detail + "; the non-headless opencv-python is installed: its Qt plugins can "
            "shadow PySide6's",
            fix="pip uninstall -y opencv-python && pip install --force-reinstall opencv-python-headless",
        )
    return Check(name="opencv", status=Status.OK, detail=detail)


def xcb_plugin_path() -> Path | None:
    """PySide6's xcb platform plugin (the window on X11); None when PySide6 is not installed."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    return package / "Qt" / "plugins" / "platforms" / "libqxcb.so"


def missing_libraries(shared_object: Path) -> list[str] | None:
    """The sonames that ``shared_object`` needs (directly or not) and the loader cannot find.

    Returns:
        The missing sonames in ``ldd``'s order, or None when ``ldd`` is not available.
    """
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    result = subprocess.run(
        [ldd, str(shared_object)], capture_output=True, text=True, timeout=30, check=False
    )
    missing: list[str] = []
    for line in result.stdout.splitlines():
        name, sep, where = line.strip().partition("=>")
        if sep and where.strip() == "not found" and name.strip() not in missing:
            missing.append(name.strip())
    return missing


def apt_packages(sonames: Iterable[str]) -> tuple[list[str], list[str]]:
    """(Debian/Ubuntu packages that ship the known sonames, the sonames not in the table)."""
    packages: list[str] = []
    unknown: list[str] = []
    for soname in sonames:
        package = APT_PACKAGES.get(soname)
        if package is None:
            unknown.append(soname)
        elif package not in packages:
            packages.append(package)
    return packages, unknown


def check_qt_libraries(plugin: Path | None) -> Check:
    """Qt (the operator window): PySide6, and the system libraries of its xcb platform plugin.

    Args:
        plugin: The xcb plugin (``xcb_plugin_path``); None when PySide6 is not installed.
    """
    name = "qt"
    if plugin is None:
        return Check(
            name=name,
            status=Status.WARN,
            detail="PySide6 is not installed: no operator window (the headless station runs)",
            fix="pip install 'inspector[gui]', or check with --headless on a station without a window",
        )
    if not sys.platform.startswith("linux"):
        return Check(name=name, status=Status.OK, detail=f"PySide6 at {plugin.parents[3]}")
    if not plugin.is_file():
        return Check(
            name=name,
            status=Status.FAIL,
            detail=f"PySide6 has no xcb platform plugin at {plugin}",
            fix="pip install --force-reinstall 'PySide6-Essentials>=6.6,<6.12'",
        )
    missing = missing_libraries(plugin)
    if missing is None:
        return Check(
            name=name,
            status=Status.WARN,
            detail="ldd is not available: the Qt system libraries are unchecked",
        )
    if not missing:
        return Check(
            name=name, status=Status.OK, detail=f"PySide6 xcb plugin and its system libraries ({plugin.name})"
        )
    packages, unknown = apt_packages(missing)
    fixes = []
    if packages:
        fixes.append(f"sudo apt-get install {' '.join(packages)}")
    if unknown:
        fixes.append(f"install the packages that ship {', '.join(unknown)} (apt-file search NAME)")
    return Check(
        name=name,
        status=Status.FAIL,
        detail=f"the window cannot open: Qt's xcb plugin needs system libraries that are missing: "
        f"{', '.join(missing)}",
        fix="; ".join(fixes),
    )


def check_display(environ: Mapping[str, str] = os.environ) -> Check:
    """Whether a window can open here at all: a display, or Qt told to draw off-screen."""
    if environ.get("QT_QPA_PLATFORM"):
        return Check(name="display", status=Status.OK, detail=f"QT_QPA_PLATFORM={environ['QT_QPA_PLATFORM']}")
    shown = [f"{k}={environ[k]}" for k in ("DISPLAY", "WAYLAND_DISPLAY") if environ.get(k)]
    if shown:
        return Check(name="display", status=Status.OK, detail=", ".join(shown))
    return Check(
        name="display",
        status=Status.WARN,
        detail="neither DISPLAY nor WAYLAND_DISPLAY is set: the window cannot open from this shell",
        fix="run it from the desktop session (or export DISPLAY=:0), or run the station with --headless",
    )


def runtime_checks(*, gui: bool = True, qt_plugin: Path | None = None) -> list[Check]:
    """Python, torch, ONNX Runtime, OpenCV and (``gui``) Qt with its libraries and a display."""
    torch_installed = importlib.util.find_spec("torch") is not None
    checks = [
        check_python(),
        check_torch(),
        check_onnxruntime(torch_installed=torch_installed),
        check_opencv(),
    ]
    if gui:
        plugin = qt_plugin if qt_plugin is not None else xcb_plugin_path()
        checks.append(check_qt_libraries(plugin))
        if plugin is not None:  # without PySide6 there is no window to open anyway
            checks.append(check_display())
    return checks
