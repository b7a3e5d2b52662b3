# Two commands on a fresh machine:
#   make demo   sets everything up and opens the operator station on the built-in demo
#   make test   sets everything up and runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Exact torch wheels first, so that no resolver ever picks (and downloads) another build.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test lint screenshot clean system-deps wheels bundle deploy-checks

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e ".[dev,train,gui]"
	touch $@

demo: setup
	$(BIN)/inspector demo

test: setup
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/ruff check core inspector_gui tests
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

# The window's Debian/Ubuntu packages (Qt's xcb plugin loads them; PySide6's wheels do not bring
# them) and Xvfb for the screenshot, as root: the list and why is installer/debian-gui-packages.txt.
system-deps:
	apt-get install -y --no-install-recommends $$(grep -v '^#' installer/debian-gui-packages.txt) xvfb xauth

# Offline set-up: every wheel of the station with its window in build/wheels/ (docs/deploy.md).
wheels:
	installer/collect_wheels.sh build/wheels --extras gui

# The torch-free station frozen with PyInstaller: dist/inspector/ (inspector, inspector-gui).
bundle:
	installer/build_bundle.sh

# What CI checks of the installs, the image's steps, the bundle and the real window (~5 min).
deploy-checks: setup
	bash .ci/deploy_checks.sh

# Refresh the README's screenshot: the real window under Xvfb (make system-deps first).
screenshot: setup
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/inspector demo --quit-after 12 --rate 4 \
		--screenshot resources/station.png

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
