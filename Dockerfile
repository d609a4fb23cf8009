# Seamline sidecar image: `seamline serve` with the proxy on 8080 and the admin API on 9090.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md* ./
COPY src ./src
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/seamline --create-home seamline \
    && mkdir -p /etc/seamline /var/lib/seamline/data /var/lib/seamline/spool \
    && chown -R seamline:seamline /var/lib/seamline

USER seamline
WORKDIR /var/lib/seamline
EXPOSE 8080 9090
# The spool (and the embedded store, when SEAMLINE_CLICKHOUSE_URL is chdb://) must outlive the container.
VOLUME ["/var/lib/seamline"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9090/readyz', timeout=2)"]
CMD ["seamline", "serve", "--config", "/etc/seamline/seamline.yaml"]
