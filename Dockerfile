# The regwatch resource image: Concourse's /opt/resource/{check,in,out}, and the daemon.
#
# Build it with scripts/build-image: it downloads the wheels on the host into build/image/wheels
# (the build itself needs no network), then runs `docker build` or `buildah bud`.
# Stages: `wheels` (the context's wheels), `tests` (optional: `--target tests` runs the test
# suite inside the base), `venv` (regwatch installed into /opt/regwatch), and the final image.
ARG base_image=python:3.11-slim-bookworm
ARG extras=postgres,apprise,aws,azure,fast
ARG pytest_args=

FROM ${base_image} AS wheels
COPY build/image/wheels/ /wheels/

FROM ${base_image} AS tests
ARG extras
ARG pytest_args
COPY --from=wheels /wheels/ /wheels/
RUN python3 -m venv /opt/regwatch \
 && /opt/regwatch/bin/python -m pip install -q --no-cache-dir --no-index --find-links /wheels \
      "regwatch[${extras},test]"
COPY pyproject.toml README.md alembic.ini config.example.yaml /src/
COPY docs/ /src/docs/
COPY migrations/ /src/migrations/
COPY regwatch/ /src/regwatch/
COPY tests/ /src/tests/
WORKDIR /src
# The end-to-end tests start `regwatch` as users do, from PATH.
ENV PATH=/opt/regwatch/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Installed editable, as in development: the tests read the sources and import them.
RUN /opt/regwatch/bin/python -m pip install -q --no-cache-dir --no-index --find-links /wheels \
      --no-deps -e /src
# Tests whose tools (docker-registry, skopeo, …) the base lacks skip; the image test needs buildah.
RUN /opt/regwatch/bin/python -m pytest -q -p no:cacheprovider --basetemp=/tmp/regwatch-tests \
      -m "not image" ${pytest_args} \
 && rm -rf /tmp/regwatch-tests

FROM ${base_image} AS venv
ARG extras
COPY --from=wheels /wheels/ /wheels/
# A venv: Debian's Python refuses a system-wide pip install (PEP 668). pip and setuptools
# leave with the wheels, so the final stage holds no installer and no cache. botocore ships the
# API models of every AWS service (about 30 MB); regwatch calls ECR and STS only, so the other
# services' models go (the shared endpoint, partition and retry files stay).
RUN python3 -m venv /opt/regwatch \
 && /opt/regwatch/bin/python -m pip install -q --no-cache-dir --no-index --find-links /wheels \
      "regwatch[${extras}]" \
 && /opt/regwatch/bin/python -m pip uninstall -q -y pip setuptools \
 && rm -f /opt/regwatch/bin/activate* /opt/regwatch/bin/Activate.ps1 /opt/regwatch/bin/pip*
RUN for data in /opt/regwatch/lib/python3*/site-packages/botocore/data; do \
      [ ! -d "$data" ] || find "$data" -mindepth 1 -maxdepth 1 -type d \
        ! -name ecr ! -name sts -exec rm -rf {} +; \
    done

FROM ${base_image}
COPY --from=venv /opt/regwatch/ /opt/regwatch/
# Concourse runs /opt/resource/{check,in,out} directly; each execs the regwatch command.
# The store's directory is writable by any user, so the image also runs as non-root.
RUN set -eu; \
    mkdir -p /opt/resource /var/lib/regwatch; \
    for step in check in out; do \
      printf '#!/bin/sh\nexec /opt/regwatch/bin/regwatch %s "$@"\n' "$step" > "/opt/resource/$step"; \
      chmod 0755 "/opt/resource/$step"; \
    done; \
    chmod 1777 /var/lib/regwatch; \
    test -s /etc/ssl/certs/ca-certificates.crt
ENV PATH=/opt/regwatch/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    XDG_STATE_HOME=/var/lib/regwatch
# The daemon's SQLite store: /var/lib/regwatch/regwatch/regwatch.db unless the config says otherwise.
VOLUME /var/lib/regwatch
CMD ["regwatch", "--help"]
