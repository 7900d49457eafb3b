# One image, three entry points (gateway, worker, projector): `tributary <command>`.
FROM python:3.11-slim
WORKDIR /app
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY gateway gateway
COPY streams streams
COPY projections projections
COPY infra infra
COPY tributary tributary
RUN pip install --no-cache-dir .
ENV TRIBUTARY_DATA_DIR=/data
VOLUME /data
ENTRYPOINT ["tributary"]
