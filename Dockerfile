# The hostagent agent. docker-compose.yml runs it in the host's PID and
# network namespaces with the host's root mounted read-only at /host, so it
# reports the host, not the container.
FROM python:3.11.9-slim-bookworm

# PYTHONMALLOC=malloc: memory a connection storm used goes back to the system
# afterwards (Python's own allocator keeps part-used arenas); the systemd unit
# sets it too, see docs/security.md.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONMALLOC=malloc \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
# The package carries these for `hostagent install` (pyproject.toml, data-files).
COPY config/agent.yaml ./config/
COPY config/systemd/hostagent.service ./config/systemd/
RUN pip install . \
    && rm -rf /build \
    && groupadd --system --gid 10001 hostagent \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin hostagent

COPY config/agent.yaml /etc/hostagent/agent.yaml
ENV HOSTAGENT_CONFIG=/etc/hostagent/agent.yaml

WORKDIR /
USER 10001:10001
EXPOSE 9100

# `hostagent healthcheck` reads the agent's configuration (the config file and
# HOSTAGENT_* variables, not command-line flags), so it follows the listen
# address and HTTPS. 401 counts as alive: with basic auth on, every path asks
# for credentials.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["hostagent", "healthcheck"]

ENTRYPOINT ["hostagent"]
