"""Load shedding and per-client rate limits for the routes that count photos (pure ASGI: before the body is read).

* Per client (its address as the server sees it; a proxy in front should limit per real client itself):
  ROOKERY_RATE_LIMIT_PER_MINUTE counting requests, as a token bucket (bursts up to the same number); past it 429
  with Retry-After: the seconds until the next token.
* Per process: at most ROOKERY_MAX_COUNTING_REQUESTS counting requests in flight (running or waiting for the
  model); past it 503 with Retry-After at once, instead of a queue that grows with the load (each waiting
  request holds its upload in memory and a worker thread).

Both answer before the body is read, so shed requests cost almost nothing; 0 turns either off.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Any

from rookery.serving.guards import send_json

COUNTING_PATHS = ("/api/v1/predict", "/invocations")
_MAX_CLIENTS = 10_000  # buckets kept (least recently seen dropped first): memory stays bounded


class TokenBuckets:
    """`per_minute` requests per client per minute, bursts of up to `per_minute`."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, client: str, now: float | None = None) -> float:
        """0 when the request may go; else the seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, at = self._buckets.pop(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > _MAX_CLIENTS:
                self._buckets.popitem(last=False)
            return wait


class Throttle:
    def __init__(self, app: Any, per_minute: int, max_in_flight: int, metrics: Any = None) -> None:
        self.app = app
        self.buckets = TokenBuckets(per_minute) if per_minute > 0 else None
        self.max_in_flight = max_in_flight
        self.in_flight = 0  # touched on the event loop only
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        counting = scope["type"] == "http" and scope["method"] == "POST" and scope.get("path") in COUNTING_PATHS
        if not counting:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if self.buckets is not None:
            wait = self.buckets.take(client[0] if client else "-")
            if wait > 0:
                self._count("rate_limited")
                seconds = max(1, math.ceil(wait))
                detail = (
                    f"too many requests from this client: at most {int(self.buckets.capacity)} a minute "
                    f"(ROOKERY_RATE_LIMIT_PER_MINUTE); try again in {seconds} s"
                )
                await send_json(send, 429, detail, [(b"retry-after", str(seconds).encode())])
                return
        if self.max_in_flight > 0 and self.in_flight >= self.max_in_flight:
            self._count("overloaded")
            detail = (
                f"the server is counting {self.in_flight} requests, its limit (ROOKERY_MAX_COUNTING_REQUESTS); "
                "try again in a few seconds"
            )
            await send_json(send, 503, detail, [(b"retry-after", b"2")])
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    def _count(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.error(kind)
