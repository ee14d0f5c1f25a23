# syntax=docker/dockerfile:1
#
# ONE image for every service: each Deployment runs `python -m services.<name>` (the chart sets the
# command). Why one image and not one per service:
#   - every service is the same Python code base on the same shared runtime (mesh/) with the same
#     pinned dependencies (requirements.lock); per-service images would be near-identical copies;
#   - one build, one scan, one digest to promote per release, and the migration Job runs from the same
#     digest as the pods it prepares, so the schema and the code that expects it cannot drift apart;
#   - a node pulls the layers once for all services.
# The cost: each service's image carries the others' code (a few hundred kB of Python).
#
# Targets:
#   docker build -t erp-mesh:0.1.0 .                                    # runtime (the default, last stage)
#   docker build --target loadtest -t erp-mesh-loadtest:0.1.0 .         # runtime + locust + loadtests/
#
# Reproducible: the base image is pinned by exact version (pin it by digest in CI:
# `--build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:...`), every Python package by
# requirements.lock, the build backend and locust by version. No compiler and no apt packages:
# every dependency ships a manylinux wheel.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN python -m venv /opt/venv \
 && pip install setuptools==80.9.0 wheel==0.45.1
# Dependencies first, from the project's metadata pinned by the lock: this layer is rebuilt only when
# pyproject.toml or requirements.lock change, not on every code change.
COPY pyproject.toml requirements.lock ./
RUN python -c 'import tomllib; print("\n".join(d for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"] if not d.startswith("erp-mesh-client")))' > /tmp/runtime-requirements.txt \
 && pip install --only-binary=:all: -c requirements.lock -r /tmp/runtime-requirements.txt
# Then the code: the client package (generated stubs, erp_client) and the services with their migrations.
COPY clients/python/ clients/python/
COPY mesh/ mesh/
COPY services/ services/
RUN pip install --no-deps --no-build-isolation ./clients/python . \
 && pip check

# ---------------------------------------------------------------------------------------------------
FROM build AS build-loadtest
RUN pip install --only-binary=:all: -c requirements.lock locust==2.47.0

# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base
# A fixed, high UID/GID (10001): the chart's securityContext runs as it, and it maps to no host user.
RUN groupadd --system --gid 10001 erp \
 && useradd --system --uid 10001 --gid erp --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin erp
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ERP_GRPC_HOST=0.0.0.0 \
    ERP_LOG_FORMAT=json
WORKDIR /app
# gRPC ports (gateway 50050, inventory 50051 ... notification 50056) and Prometheus metrics.
EXPOSE 50050-50056 8080 9464

# ---------------------------------------------------------------------------------------------------
FROM base AS loadtest
COPY --from=build-loadtest /opt/venv /opt/venv
COPY loadtests/ loadtests/
USER 10001:10001
ENTRYPOINT ["locust"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------------------
# The default target. No source tree in the image: the code is installed (compiled) in /opt/venv.
FROM base AS runtime
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
# `docker run erp-mesh:0.1.0 services.orders`; the chart sets the full command per service.
ENTRYPOINT ["python", "-m"]
CMD ["services.inventory"]
