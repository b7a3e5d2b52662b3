# inspector in containers. Two images from this file (no Docker engine runs in CI: CI lints this
# file with hadolint and runs the station image's install steps, the same two scripts, in a fresh
# virtual environment, then the headless station from it; see .ci/deploy_checks.sh):
#
#   station (the default target): the headless station on ONNX Runtime, without torch or Qt.
#     docker build -t inspector .
#     docker run -d --name line1 -v /srv/inbox:/data/inbox -v /srv/models/current:/model:ro \
#       -v inspector-data:/data inspector
#   The model must be exported for ONNX Runtime (inspector export BUNDLE --onnx, where torch is).
#   Settings as INSPECTOR_<FIELD> variables (-e INSPECTOR_STATION_NAME=line-1,
#   -e INSPECTOR_DB_URL=postgresql+psycopg://...) or --config /data/station.json.
#
#   cuda: PyTorch with CUDA, for a GPU edge box (the station on the GPU) and for training.
#     docker build --target cuda -t inspector:cuda .
#     docker run -d --gpus all -v /srv/inbox:/data/inbox -v /srv/models/current:/model:ro \
#       -v inspector-data:/data inspector:cuda
#     docker run --rm --gpus all -v /srv/datasets:/datasets:ro -v /srv/runs:/runs inspector:cuda \
#       train /datasets/casting --out /runs/casting-1 --arch resnet18 --device cuda
#   The host needs the NVIDIA driver and the NVIDIA Container Toolkit; torch's wheels bring the
#   CUDA runtime libraries themselves, so the base needs none.
#
# Neither image opens the operator window (no display in a container); the window's Debian
# packages are listed in installer/debian-gui-packages.txt for the machines that do.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- wheels: built once, installed offline
FROM ${PYTHON_IMAGE} AS wheels
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core core
COPY inspector_gui inspector_gui
COPY installer installer
# The station's extras: postgres for a shared log, mqtt for verdicts to the line's PLC gateway.
ARG STATION_EXTRAS=postgres,mqtt
RUN installer/collect_wheels.sh /wheels --extras "$STATION_EXTRAS"

# ---------------------------------------------------------------- cuda: GPU edge box and training
FROM ${PYTHON_IMAGE} AS cuda
# torch's default wheels on Linux are the CUDA build; TORCH_PINS as in the Makefile.
ARG TORCH_PINS="torch==2.14.1 torchvision==0.29.1"
COPY --from=wheels /src /src
# The pins are TORCH_PINS; the project is installed from its own source.
# hadolint ignore=DL3013
RUN python -m venv /opt/inspector/venv \
 && /opt/inspector/venv/bin/pip install --no-cache-dir $TORCH_PINS \
 && /opt/inspector/venv/bin/pip install --no-cache-dir "/src[train,postgres,mqtt]" \
 && ln -s /opt/inspector/venv/bin/inspector /usr/local/bin/inspector \
 && rm -rf /src \
 && useradd --create-home --uid 1000 --shell /usr/sbin/nologin inspector \
 && mkdir -p /data/inbox /model && chown -R 1000:1000 /data
ENV INSPECTOR_HOME=/data INSPECTOR_SOURCE=hotfolder:/data/inbox INSPECTOR_MODEL=/model \
    INSPECTOR_DEVICE=cuda NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    PYTHONUNBUFFERED=1
USER 1000
WORKDIR /data
VOLUME ["/data", "/data/inbox", "/model"]
HEALTHCHECK --interval=30s --timeout=20s --start-period=120s --retries=3 \
  CMD ["inspector", "doctor", "--health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["inspector"]
CMD ["run", "--headless"]

# ---------------------------------------------------------------- station: the slim line image (default)
FROM ${PYTHON_IMAGE} AS station
ARG STATION_EXTRAS=postgres,mqtt
COPY --from=wheels /wheels /tmp/wheels
COPY installer /tmp/installer
# The same script and flags as a Linux line PC's offline install (no window, no unit: the
# container is the service). The station's wheels need no Debian package (ldd: libc, libstdc++).
RUN /tmp/installer/install.sh --prefix /opt/inspector --bin-dir /usr/local/bin \
      --extras "$STATION_EXTRAS" --wheels /tmp/wheels --no-service --no-desktop --no-apt \
 && rm -rf /tmp/wheels /tmp/installer \
 && useradd --create-home --uid 1000 --shell /usr/sbin/nologin inspector \
 && mkdir -p /data/inbox /model && chown -R 1000:1000 /data
# INSPECTOR_HOME: the visual log (SQLite) and its media in the /data volume. The hot folder and
# the model are their own volumes so that each can be a mount of its own (the inbox a share the
# camera PC writes to, the model read-only).
ENV INSPECTOR_HOME=/data INSPECTOR_SOURCE=hotfolder:/data/inbox INSPECTOR_MODEL=/model \
    INSPECTOR_BACKEND=onnx PYTHONUNBUFFERED=1
USER 1000
WORKDIR /data
VOLUME ["/data", "/data/inbox", "/model"]
# Healthy while a live station holds the hot folder, the log answers, the disk has room and the
# bundle is there; quick (no model load), read-only towards the inbox.
HEALTHCHECK --interval=30s --timeout=20s --start-period=60s --retries=3 \
  CMD ["inspector", "doctor", "--health"]
# SIGTERM stops the station cleanly after the part in hand is logged.
STOPSIGNAL SIGTERM
ENTRYPOINT ["inspector"]
CMD ["run", "--headless"]
