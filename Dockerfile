# TagIO relay server: rendezvous + encrypted-traffic relay. Standard library + pycryptodome only.
#
#   docker build -t tagio-relay .
#   docker run -d -p 443:10000/tcp -p 443:10000/udp -e PUBLIC_IP=relay.example.org:443 -e AUTH_SECRET=... tagio-relay
#
# Configured by the environment: PORT (listen port inside the container, default 10000 as on Render),
# PUBLIC_IP (address clients use, shown on the info page; with :443 when port 443 is mapped to $PORT), AUTH_SECRET (private relay),
# TAGIO_RELAY_STATE (ID->key bindings file).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=10000 \
    TAGIO_RELAY_STATE=/data/relay-bindings.json

WORKDIR /app
COPY requirements.txt ./
# The relay needs only pycryptodome; take its pinned version from requirements.txt (one source of truth).
RUN pip install --no-cache-dir "$(grep -i '^pycryptodome==' requirements.txt)"

COPY tagio/ ./tagio/
COPY tagio_relay_server.py ./

# Never run as root: the relay needs no privileges (the container maps the public port onto $PORT).
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin tagio \
    && mkdir -p /data && chown tagio /data
USER tagio
# The bindings must outlive the container: mount a volume here (docker run -v tagio-relay-data:/data).
VOLUME ["/data"]

EXPOSE 10000/tcp 10000/udp

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '10000'), timeout=4)"]

# --bind makes the start non-interactive even with `docker run -it`.
CMD ["sh", "-c", "exec python tagio_relay_server.py --bind 0.0.0.0:${PORT}"]
