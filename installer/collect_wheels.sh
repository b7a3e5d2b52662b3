#!/usr/bin/env bash
# Offline set-up, step 1 (on a machine with the registry): every wheel an install needs, in one
# folder to carry to the line PC (USB stick, file share). Step 2, on the line PC:
#   installer/install.sh --wheels DIR            (Linux: venv, commands, desktop entry, unit)
#   pip install --no-index --find-links DIR "inspector[gui]"   (any venv, any system)
#
#   installer/collect_wheels.sh DIR [--extras gui] [--platform win_amd64] [--python-version 3.11]
#
# --extras: the extras to take, comma-separated: "" the headless station (the base), "gui" the
#   station with its window (the default), "train,gui" everything (torch: several GB).
# --platform/--python-version: collect for another system than this one (e.g. a Windows line PC
#   from a Linux machine); every package must then have a binary wheel for it, which the
#   station's all do. The project's own wheel is built here either way (it is pure Python).
set -euo pipefail

EXTRAS=gui
PLATFORM=""
PYVER=""
PYTHON=${PYTHON:-python3}
DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --extras) EXTRAS=$2; shift 2 ;;
    --platform) PLATFORM=$2; shift 2 ;;
    --python-version) PYVER=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "unknown option: $1" >&2; exit 2 ;;
    *) DIR=$1; shift ;;
  esac
done
[ -n "$DIR" ] || { echo "usage: $0 DIR [--extras gui] [--platform TAG] [--python-version X.Y]" >&2; exit 2; }
SRC=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
REQ="inspector"
[ -z "$EXTRAS" ] || REQ="inspector[$EXTRAS]"

# The project's wheel first, with nothing else; then its dependencies, asked for by the wheel's
# own path: the registry holds an unrelated project also called "inspector", with a higher
# version, which a request by name would take.
built=$(mktemp -d)
trap 'rm -rf "$built"' EXIT
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$built" "$SRC"
wheel=$(find "$built" -name 'inspector-*.whl' | head -n 1)
cp "$wheel" "$DIR/"
wheel="$DIR/$(basename "$wheel")"
WANT="$wheel"
[ -z "$EXTRAS" ] || WANT="${wheel}[$EXTRAS]"
if [ -n "$PLATFORM$PYVER" ]; then
  target=(--only-binary=:all:)
  [ -z "$PLATFORM" ] || target+=(--platform "$PLATFORM")
  [ -z "$PYVER" ] || target+=(--python-version "$PYVER")
  "$PYTHON" -m pip download --quiet "${target[@]}" --dest "$DIR" "$WANT"
else
  # Wheels for this system; any dependency published only as source is built into a wheel here.
  "$PYTHON" -m pip wheel --quiet --wheel-dir "$DIR" "$WANT"
fi
count=$(find "$DIR" -maxdepth 1 -name '*.whl' | wc -l)
echo "collected $count wheels for $REQ${PLATFORM:+ ($PLATFORM)} in $DIR ($(du -sh "$DIR" | cut -f1))"
echo "install from it alone: pip install --no-index --find-links $DIR \"$REQ\""
