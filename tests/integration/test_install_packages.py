"""installer/debian-gui-packages.txt, the Debian packages of the window that install.sh, .ci/run and
``make system-deps`` install, covers every system library Qt's xcb plugin loads as installed here
(found with ldd); and ``inspector doctor`` can name the package of each of them, the package
that really ships it (dpkg). A PySide6 update that needs another library fails here, not on a
line PC."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.station import doctor

ROOT = Path(__file__).resolve().parents[2]
LIST = ROOT / "installer" / "debian-gui-packages.txt"
# The libraries of the display stack (X11, xcb, keyboard, GL, fonts, D-Bus, GLib): what a
# minimal Debian lacks. libc, libstdc++ and their kin are on every system.
DISPLAY_STACK = ("libxcb", "libX", "libxkb", "libEGL", "libGL", "libOpenGL", "libfontconfig", "libfreetype",
                 "libdbus", "libglib", "libgthread")  # fmt: skip


def _listed() -> set[str]:
    return {
        line.strip() for line in LIST.read_text().splitlines() if line.strip() and not line.startswith("#")
    }


def _system_libraries(shared_object: Path) -> dict[str, Path]:
    """The libraries ``shared_object`` loads, directly or not, that are not PySide6's own."""
    out = subprocess.run(["ldd", str(shared_object)], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        name, sep, rest = line.strip().partition("=>")
        where = rest.split("(")[0].strip()
        if sep and where.startswith("/") and "PySide6" not in where and "shiboken6" not in where:
            found[name.strip()] = Path(where)
    return found


@pytest.fixture(scope="module")
def xcb_libraries() -> dict[str, Path]:
    plugin = doctor.xcb_plugin_path()
    if not sys.platform.startswith("linux") or shutil.which("ldd") is None:
        pytest.skip("ldd on Linux only")
    if plugin is None or not plugin.is_file():
        pytest.skip("PySide6 (the [gui] extra) is not installed")
    libraries = _system_libraries(plugin)
    assert "libxcb.so.1" in libraries, libraries  # the window's own: ldd really read the plugin
    return libraries


def test_the_list_names_the_package_of_every_display_library_the_plugin_loads(
    xcb_libraries: dict[str, Path],
) -> None:
    listed = _listed()
    display = sorted(soname for soname in xcb_libraries if soname.startswith(DISPLAY_STACK))
    assert len(display) >= 15, display
    unnamed = [soname for soname in display if soname not in doctor.APT_PACKAGES]
    assert not unnamed, f"inspector doctor cannot name the package of {unnamed} (APT_PACKAGES)"
    missing = sorted({doctor.APT_PACKAGES[soname] for soname in display} - listed)
    assert not missing, f"add to {LIST.name}: {missing}"


def test_doctor_names_the_package_that_really_ships_each_library(xcb_libraries: dict[str, Path]) -> None:
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg: Debian and Ubuntu only")
    wrong = {}
    for soname, path in xcb_libraries.items():
        named = doctor.APT_PACKAGES.get(soname)
        if named is None:
            continue
        result = subprocess.run(["dpkg", "-S", str(path.resolve())], capture_output=True, text=True)
        if result.returncode != 0:
            continue  # not from a package (a library built by hand): nothing to compare
        shipped = result.stdout.split(":")[0].strip()
        if shipped != named:
            wrong[soname] = (named, shipped)
    assert not wrong, f"APT_PACKAGES names the wrong package: {wrong}"
