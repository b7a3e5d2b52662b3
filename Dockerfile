# The headless station (and the demo) in a container. The default command runs the built-in
# demo without a screen; for a line, mount a hot folder and a model bundle:
#   docker run -v /srv/inbox:/data/inbox -v /srv/models/current:/model:ro inspector \
#     run --headless --source hotfolder:/data/inbox --model /model
FROM python:3.11-slim

# OpenCV's and Qt's shared libraries (the GUI package is installed but not started here).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3 \
 && rm -rf /var/lib/apt/lists/*

# Pick the torch wheels for the target: e.g. --build-arg TORCH_INDEX_URL=<your CPU-wheel index>
# for a small CPU-only image; by default the registry's standard build is used.
ARG TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"
ARG TORCH_INDEX_URL=""
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
      pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" $TORCH_SPEC; \
    else \
      pip install --no-cache-dir $TORCH_SPEC; \
    fi

WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY inspector_gui inspector_gui
RUN pip install --no-cache-dir ".[train,gui]" && useradd --create-home --uid 1000 inspector \
 && mkdir -p /data && chown inspector /data

USER inspector
ENV INSPECTOR_HOME=/data QT_QPA_PLATFORM=offscreen PYTHONUNBUFFERED=1
VOLUME ["/data"]
# SIGTERM stops the station cleanly after the part in hand is logged.
STOPSIGNAL SIGTERM
ENTRYPOINT ["inspector"]
CMD ["demo", "--headless"]
