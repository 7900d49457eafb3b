# Tributary's image: one image, four entry points (gateway, worker, projector, dashboard): `tributary <command>`.
# BASE is any Debian bookworm image: debian:bookworm-slim from a registry, or here, where there
# is none, the root file system `tributary images build` makes with mmdebstrap.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/tributary
ENV PATH=/opt/tributary/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# The dependencies first, in a layer that changes only with pyproject.toml.
COPY pyproject.toml ./
RUN touch README.md && for p in schemas gateway streams projections dashboard infra tributary cli; do mkdir -p $p && touch $p/__init__.py; done \
    && pip install --no-cache-dir . && pip uninstall -y -q tributary && rm -rf /app/*
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY gateway gateway
COPY streams streams
COPY projections projections
COPY dashboard dashboard
COPY infra infra
COPY tributary tributary
COPY cli cli
RUN pip install --no-cache-dir --no-deps . && rm -rf build
ENV TRIBUTARY_DATA_DIR=/data
VOLUME /data
ENTRYPOINT ["tributary"]
