"""`labloop web`: serve the status page until Ctrl-C."""

from __future__ import annotations

import ipaddress
import logging
import socket

from waitress import create_server

from agent.config import get_settings
from agent.errors import LabloopError
from agent.store.db import init_db, make_engine
from agent.web.app import create_app

log = logging.getLogger(__name__)

# waitress: requests served at once, connections held open, and how long an idle or
# half-sent one (headers or body trickling in) may hold its slot
THREADS = 8
CONNECTION_LIMIT = 200
IDLE_TIMEOUT_SECONDS = 30


def serve(host: str, port: int) -> None:
    """Serve the page of the configured labloop home on http://host:port (waitress)."""
    settings = get_settings()
    settings.ensure_folders()
    # a fresh home shows an empty page rather than an error
    init_db(make_engine(settings.database_url))
    if not is_loopback(host):
        log.warning("labloop web: %s", exposure_warning(host, settings.web_read_token is not None))
    try:
        server = create_server(
            create_app(settings), host=host, port=port, threads=THREADS,
            channel_timeout=IDLE_TIMEOUT_SECONDS, connection_limit=CONNECTION_LIMIT,
        )  # fmt: skip
    except OSError as error:  # the port is taken, or the address is not this machine's
        raise LabloopError(
            f"cannot listen on {host}:{port}: {error.strerror or error}; choose another --port"
        ) from None
    mode = "approvals need the token" if settings.web_token else "read-only"
    if settings.web_read_token:
        mode += ", reading needs the read token"
    log.info("labloop web: http://%s:%d (%s; Ctrl-C stops)", host, port, mode)
    try:
        server.run()
    except KeyboardInterrupt:
        log.info("labloop web: stopping")
    finally:
        server.close()


def exposure_warning(host: str, read_protected: bool) -> str:
    """What listening on ``host``, reachable from other machines, lets others do."""
    if read_protected:
        return (
            f"{host} is reachable from other machines; read protection is on (web_read_token), "
            "but plain HTTP carries the tokens in clear: put a reverse proxy with TLS in front"
        )
    return (
        f"{host} is reachable from other machines and read protection is off: anyone there "
        "can read the page (batches, recipes, file names); set web_read_token, or serve it on "
        "127.0.0.1 behind a proxy with authentication"
    )


def is_loopback(host: str) -> bool:
    """Only this machine can connect to ``host`` (127.0.0.1, ::1, localhost)."""
    try:
        return all(
            ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None)
        )
    except (OSError, ValueError):
        return False
