"""Who may read and write the status page: tokens, and a limit on guessing them.

Reading needs ``web_read_token`` when it is set (HTTP Basic auth, any user name, the token
as password: every browser and ``curl -u`` speak it); writing needs ``web_token`` in the
form. Wrong tokens of either kind count against the client's address: after
``GUESS_LIMIT`` of them within ``GUESS_WINDOW_SECONDS`` the address is refused with 429
for a whole window, the right token included, so a token cannot be guessed at speed.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections.abc import Callable

from flask import Flask, Response, request
from pydantic import SecretStr

GUESS_LIMIT = 5
GUESS_WINDOW_SECONDS = 60.0
# addresses remembered before stale ones are dropped: the page serves one lab, not the world
_PRUNE_ABOVE = 1024
# routes anyone may call: compose's health check carries no credentials
OPEN_ENDPOINTS = frozenset({"healthz"})


class GuessLimiter:
    """Wrong tokens per client address; an address with too many in a window is locked out.

    In memory, for the one page process; thread-safe (waitress serves in threads).
    ``clock`` is injectable so that a test can pass a window without waiting for it.
    """

    def __init__(
        self,
        limit: int = GUESS_LIMIT,
        window_seconds: float = GUESS_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, list[float]] = {}  # address -> times of recent wrong tokens
        self._locked_until: dict[str, float] = {}

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until ``address`` may try again, None if it may now."""
        with self._lock:
            left = self._locked_until.get(address, 0.0) - self._clock()
        return math.ceil(left) if left > 0 else None

    def failed(self, address: str) -> None:
        """Count a wrong token from ``address``; the limit-th within a window locks it out."""
        now = self._clock()
        with self._lock:
            if len(self._failures) > _PRUNE_ABOVE:
                self._forget_stale(now)
            recent = [t for t in self._failures.get(address, []) if t > now - self.window_seconds]
            recent.append(now)
            if len(recent) >= self.limit:
                self._locked_until[address] = now + self.window_seconds
                recent = []
            self._failures[address] = recent

    def _forget_stale(self, now: float) -> None:
        """Drop addresses with no wrong token in the window and no lockout running."""
        since = now - self.window_seconds
        self._failures = {a: ts for a, ts in self._failures.items() if ts and ts[-1] > since}
        self._locked_until = {a: t for a, t in self._locked_until.items() if t > now}


def token_matches(given: str | None, expected: SecretStr | None) -> bool:
    """``given`` is the configured token (constant-time); never true when none is set."""
    if expected is None or given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


def plain_text(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    """A one-line answer a person reads in the browser or in curl's output."""
    return Response(message + "\n", status=status, mimetype="text/plain", headers=headers)


def too_many_guesses(retry_after: int) -> Response:
    return plain_text(
        f"too many wrong tokens from your address; try again in {retry_after} s",
        429,
        {"Retry-After": str(retry_after)},
    )


def protect_reading(app: Flask, read_token: SecretStr, guesses: GuessLimiter) -> None:
    """Every route but the open ones needs HTTP Basic auth with ``read_token`` as password."""

    @app.before_request
    def check_reader() -> Response | None:
        if request.endpoint in OPEN_ENDPOINTS:
            return None
        address = request.remote_addr or "unknown"
        if (wait := guesses.retry_after(address)) is not None:
            return too_many_guesses(wait)
        credentials = request.authorization
        if credentials is not None and token_matches(credentials.password, read_token):
            return None
        if credentials is not None:  # a browser's first request carries none: not a guess
            guesses.failed(address)
        return plain_text(
            "this page needs the read token: any user name, the token as password",
            401,
            {"WWW-Authenticate": 'Basic realm="labloop", charset="UTF-8"'},
        )
