#!/usr/bin/env bash
# The torch-free station frozen with PyInstaller into one folder, dist/inspector/ (the programs
# inspector and inspector-gui, and everything they load): copy the folder to a line PC that has
# no Python. Windows: installer/build_bundle.ps1, then installer/windows/inspector.iss.
#   installer/build_bundle.sh [--wheels DIR] [--extras gui] [--dist DIR] [--work DIR]
# --wheels: install the station from this folder (installer/collect_wheels.sh) instead of the
#   source; PyInstaller itself comes from the registry.
# The build environment is made fresh under the work folder, so torch can never slip in.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
EXTRAS=gui
WHEELS=""
DIST="$SRC/dist"
WORK="$SRC/build/bundle"
PYTHON=${PYTHON:-python3}
PYINSTALLER_SPEC=${PYINSTALLER_SPEC:-"pyinstaller>=6.10,<7"}
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) WHEELS=$(cd "$2" && pwd); shift 2 ;;
    --extras) EXTRAS=$2; shift 2 ;;
    --dist) DIST=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$DIST" "$WORK"
DIST=$(cd "$DIST" && pwd)
WORK=$(cd "$WORK" && pwd)

rm -rf "$WORK/venv"
"$PYTHON" -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
if [ -n "$WHEELS" ]; then
  "$PY" -m pip install --quiet --no-index --find-links "$WHEELS" "inspector${EXTRAS:+[$EXTRAS]}"
else
  "$PY" -m pip install --quiet "$SRC${EXTRAS:+[$EXTRAS]}"
fi
"$PY" -m pip install --quiet "$PYINSTALLER_SPEC"
# From a folder outside the checkout, so that the analysis takes the installed package.
(cd "$WORK" && "$PY" -m PyInstaller --noconfirm --log-level WARN --distpath "$DIST" \
  --workpath "$WORK/pyinstaller" "$SRC/installer/freeze/inspector.spec")
echo "bundle: $DIST/inspector ($(du -sh "$DIST/inspector" | cut -f1)); run $DIST/inspector/inspector --help"
