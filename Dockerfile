# digitbot images. The default target serves (no TensorFlow); --target train adds TensorFlow
# for `python -m model.train` and for /retrain inside the bot's container.
#
#   docker build -t digitbot .                       # serving image
#   docker build -t digitbot:train --target train .  # + TensorFlow
#
# The pip commands are the Makefile's (INSTALL_LOCKED, INSTALL_PROJECT, the lock files);
# tests/test_deploy.py fails when they drift apart.

ARG PYTHON_IMAGE=python:3.11-slim

# --- the serving install, in a venv that the final stages copy --------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY requirements/ requirements/
RUN python -m pip install --require-hashes -r requirements/serve.txt
COPY pyproject.toml README.md ./
COPY bot/ bot/
COPY model/ model/
RUN python -m pip install --no-deps .

# --- the same plus the training extra ---------------------------------------------------------
FROM build AS build-train
RUN python -m pip install --require-hashes -r requirements/train.txt

# --- what both images share: a non-root user and the data volume ------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --create-home --uid 10001 digitbot \
    && mkdir /data && chown digitbot:digitbot /data
# DATA_DIR holds the database and the retrained models: keep it on a volume. /healthz and
# /metrics listen on METRICS_PORT in polling mode (on WEBHOOK_PORT in webhook mode), on all of
# the container's interfaces, so the HEALTHCHECK and a Prometheus scraper reach them.
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 DATA_DIR=/data \
    METRICS_PORT=9464 METRICS_LISTEN=0.0.0.0
VOLUME /data
WORKDIR /home/digitbot
USER digitbot
EXPOSE 9464 8443
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-m", "bot.healthcheck"]
CMD ["python", "-m", "bot"]

FROM runtime AS train
COPY --from=build-train /opt/venv /opt/venv

# --- the default target: serving, no TensorFlow -----------------------------------------------
FROM runtime AS serve
COPY --from=build /opt/venv /opt/venv
