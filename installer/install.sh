#!/usr/bin/env bash
# Install inspector on a Linux line PC: a virtual environment under PREFIX, the two commands
# linked into BIN_DIR, a desktop entry for the operator station and a systemd unit for the
# headless station. Run from a checkout or an unpacked release:
#   sudo installer/install.sh [--prefix /opt/inspector] [--bin-dir /usr/local/bin] [--no-service]
set -euo pipefail

PREFIX=/opt/inspector
BIN_DIR=/usr/local/bin
SERVICE=1
TORCH_PINS=${TORCH_PINS:-"torch==2.14.1 torchvision==0.29.1"}
PYTHON=${PYTHON:-python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=$2; shift 2 ;;
    --bin-dir) BIN_DIR=$2; shift 2 ;;
    --no-service) SERVICE=0; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

SRC=$(cd "$(dirname "$0")/.." && pwd)
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "inspector needs Python 3.11 or newer ($PYTHON is older)" >&2; exit 1; }

echo "installing into $PREFIX"
"$PYTHON" -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/python" -m pip install --quiet --upgrade pip
"$PREFIX/venv/bin/python" -m pip install --quiet $TORCH_PINS
"$PREFIX/venv/bin/python" -m pip install --quiet "$SRC[train,gui]"

mkdir -p "$BIN_DIR"
ln -sf "$PREFIX/venv/bin/inspector" "$BIN_DIR/inspector"
ln -sf "$PREFIX/venv/bin/inspector-gui" "$BIN_DIR/inspector-gui"

if [ -d /usr/share/applications ] && [ -w /usr/share/applications ]; then
  sed "s#@BIN_DIR@#$BIN_DIR#g" "$SRC/installer/inspector.desktop" > /usr/share/applications/inspector.desktop
fi
if [ "$SERVICE" = 1 ] && [ -d /etc/systemd/system ] && [ -w /etc/systemd/system ]; then
  sed "s#@BIN_DIR@#$BIN_DIR#g" "$SRC/installer/inspector.service" > /etc/systemd/system/inspector.service
  echo "systemd unit written: edit /etc/default/inspector, then 'systemctl enable --now inspector'"
  [ -f /etc/default/inspector ] || cp "$SRC/installer/inspector.default" /etc/default/inspector
fi
"$BIN_DIR/inspector" --version
echo "done: run 'inspector demo' to try the station on generated parts"
