#!/usr/bin/env bash
# Install inspector on a Linux line PC or in an image: a virtual environment under PREFIX, the two
# commands linked into BIN_DIR, a desktop entry for the operator window and a systemd unit for
# the headless station. Run from a checkout or an unpacked release, as root for a system install:
#   sudo installer/install.sh [--prefix /opt/inspector] [--bin-dir /usr/local/bin]
#        [--extras gui | "" | train,gui] [--wheels DIR] [--root /] [--no-service] [--no-desktop] [--no-apt]
#
# --extras   gui (the default): the station and its window, without torch; "": the headless
#            station only (what the Docker image installs); train,gui: everything, with torch's
#            pinned wheels (TORCH_PINS) first, for a training workstation.
# --wheels   install from this folder alone, without the registry (installer/collect_wheels.sh
#            makes it on a machine that has the registry).
# --root     where the desktop entry, the unit and its settings are written (default /): a
#            staging folder for a package, or a scratch folder in CI.
# --no-apt   do not install the window's Debian packages (installer/debian-gui-packages.txt);
#            they are named instead.
set -euo pipefail

PREFIX=/opt/inspector
BIN_DIR=/usr/local/bin
ROOT=/
EXTRAS=gui
WHEELS=""
SERVICE=1
DESKTOP=1
APT=1
TORCH_PINS=${TORCH_PINS:-"torch==2.14.1 torchvision==0.29.1"}
PYTHON=${PYTHON:-python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=$2; shift 2 ;;
    --bin-dir) BIN_DIR=$2; shift 2 ;;
    --root) ROOT=$2; shift 2 ;;
    --extras) EXTRAS=$2; shift 2 ;;
    --wheels) WHEELS=$(cd "$2" && pwd); shift 2 ;;
    --no-service) SERVICE=0; shift ;;
    --no-desktop) DESKTOP=0; shift ;;
    --no-apt) APT=0; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

SRC=$(cd "$(dirname "$0")/.." && pwd)
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "inspector needs Python 3.11 or newer ($PYTHON is older)" >&2; exit 1; }
ROOT=${ROOT%/}
case ",$EXTRAS," in *,gui,*) GUI=1 ;; *) GUI=0 ;; esac
case ",$EXTRAS," in *,train,*) TRAIN=1 ;; *) TRAIN=0 ;; esac

# The window's system libraries: PySide6's wheels bundle Qt, not the X11/xcb libraries its xcb
# platform plugin loads. Without them the window aborts at start; `inspector doctor` names them.
GUI_PACKAGES=$(grep -v '^#' "$SRC/installer/debian-gui-packages.txt" | tr '\n' ' ')
if [ "$GUI" = 1 ]; then
  if [ "$APT" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing the window's system libraries (apt-get)"
    apt-get update -qq
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $GUI_PACKAGES >/dev/null
  else
    echo "the window needs these Debian/Ubuntu packages (skipped here): $GUI_PACKAGES"
  fi
fi

echo "installing into $PREFIX (extras: ${EXTRAS:-none}${WHEELS:+, offline from $WHEELS})"
"$PYTHON" -m venv "$PREFIX/venv"
PIP=("$PREFIX/venv/bin/python" -m pip install --quiet)
if [ -n "$WHEELS" ]; then
  PIP+=(--no-index --find-links "$WHEELS")
  WANT="inspector"  # the only "inspector" the folder holds is ours
else
  "$PREFIX/venv/bin/python" -m pip install --quiet --upgrade pip
  WANT="$SRC"
fi
[ -z "$EXTRAS" ] || WANT="${WANT}[$EXTRAS]"
if [ "$TRAIN" = 1 ]; then
  # shellcheck disable=SC2086 # one word per pin
  "${PIP[@]}" $TORCH_PINS
fi
"${PIP[@]}" "$WANT"

mkdir -p "$BIN_DIR"
ln -sf "$PREFIX/venv/bin/inspector" "$BIN_DIR/inspector"
[ "$GUI" = 0 ] || ln -sf "$PREFIX/venv/bin/inspector-gui" "$BIN_DIR/inspector-gui"

if [ "$DESKTOP" = 1 ] && [ "$GUI" = 1 ]; then
  mkdir -p "$ROOT/usr/share/applications"
  sed "s#@BIN_DIR@#$BIN_DIR#g" "$SRC/installer/inspector.desktop" > "$ROOT/usr/share/applications/inspector.desktop"
  echo "desktop entry: $ROOT/usr/share/applications/inspector.desktop"
fi
if [ "$SERVICE" = 1 ]; then
  mkdir -p "$ROOT/etc/systemd/system" "$ROOT/etc/default"
  sed "s#@BIN_DIR@#$BIN_DIR#g" "$SRC/installer/inspector.service" > "$ROOT/etc/systemd/system/inspector.service"
  [ -f "$ROOT/etc/default/inspector" ] || cp "$SRC/installer/inspector.default" "$ROOT/etc/default/inspector"
  if [ -z "$ROOT" ] && [ "$(id -u)" = 0 ]; then
    # The unit runs as this user; the data directory (visual log, media) is its own.
    id inspector >/dev/null 2>&1 || useradd --system --home-dir /var/lib/inspector --shell /usr/sbin/nologin inspector
    install -d -o inspector -m 0750 /var/lib/inspector
  fi
  echo "systemd unit: $ROOT/etc/systemd/system/inspector.service; edit $ROOT/etc/default/inspector, then 'systemctl enable --now inspector'"
fi
"$BIN_DIR/inspector" --version
echo "check this machine and the settings: inspector doctor [--config FILE]"
