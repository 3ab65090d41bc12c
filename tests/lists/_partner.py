"""A small partner on loopback for lists, fan-out, pacing and idempotency.

It serves the same 23 records in every pagination style, answers single records, takes
payments that fail once per idempotency key, and records each request with its arrival time
(``time.monotonic``) and how many requests were in flight at once.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs

RECORDS = [{"id": n, "name": f"record {n}"} for n in range(1, 24)]
PAGE_SIZE = 5


@attrs.frozen
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    arrived: float


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"after:{offset}".encode()).decode()


def _offset_of(cursor: str | None) -> int:
    return int(base64.urlsafe_b64decode(cursor.encode()).decode().split(":")[1]) if cursor else 0


class ListPartner:
    def __init__(self, *, delay_s: float = 0.0, foreign_url: str = "") -> None:
        self.delay_s = delay_s
        self.foreign_url = foreign_url  # where /foreign-next points its next link
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.pay_attempts: dict[str, int] = {}
        self.throttled = False
        self._lock = threading.Lock()
        partner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                partner._handle(self)

            def do_POST(self) -> None:
                partner._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ListPartner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def requests_to(self, prefix: str) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.seen if seen.path.startswith(prefix)]

    # --- routes ---------------------------------------------------------------------------

    def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        arrived = time.monotonic()
        parts = urlsplit(handler.path)
        query = dict(parse_qsl(parts.query))
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)
        seen = Seen(handler.command, parts.path, query, {k.lower(): v for k, v in handler.headers.items()}, arrived)
        with self._lock:
            self.seen.append(seen)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            status, body, headers = self._route(seen)
        finally:
            with self._lock:
                self.in_flight -= 1
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _route(self, seen: Seen) -> tuple[int, Any, list[tuple[str, str]]]:
        path, query = seen.path, seen.query
        if path == "/link":
            page = int(query.get("page", "1"))
            headers = [("Link", f'</link?page={page + 1}>; rel="next", </link?page=5>; rel="last"')] if page < 5 else []
            return 200, {"data": self._slice((page - 1) * PAGE_SIZE)}, headers
        if path == "/next_url":
            page = int(query.get("page", "1"))
            # Relative first, absolute later: both are read against the page's URL.
            following = (None if page >= 5 else
                         f"next_url?page={page + 1}" if page % 2 else f"{self.url}/next_url?page={page + 1}")
            return 200, {"data": self._slice((page - 1) * PAGE_SIZE), "links": {"next": following}}, []
        if path == "/cursor":
            offset = _offset_of(query.get("cursor"))
            following = offset + PAGE_SIZE
            return 200, {"data": self._slice(offset),
                         "meta": {"next_cursor": _cursor(following) if following < len(RECORDS) else None}}, []
        if path == "/page":
            page = int(query["page"])
            size = int(query.get("per_page", PAGE_SIZE))
            return 200, {"data": RECORDS[(page - 1) * size: page * size]}, []
        if path == "/offset":
            offset = int(query["offset"])
            size = int(query.get("limit", PAGE_SIZE))
            return 200, {"data": RECORDS[offset: offset + size]}, []
        if path == "/foreign-next":
            return 200, {"data": self._slice(0)}, [("Link", f'<{self.foreign_url}/link?page=2>; rel="next"')]
        if path == "/endless":
            page = int(query.get("page", "1"))
            return 200, {"data": [page]}, [("Link", f'</endless?page={page + 1}>; rel="next"')]
        if path == "/ids":
            return 200, {"ids": list(range(1, 101))}, []
        if path.startswith("/things/"):
            thing = path.rsplit("/", 1)[1]
            failing = query.get("fail", "")  # the ids that fail, comma-separated, or "all"
            if failing == "all" or thing in failing.split(","):
                return 500, {"error": f"broken record {thing}"}, []
            return 200, {"id": int(thing), "name": f"thing {thing}"}, []
        if path == "/pay":
            key = seen.headers.get("idempotency-key") or seen.headers.get("x-request-id") or ""
            with self._lock:
                self.pay_attempts[key] = self.pay_attempts.get(key, 0) + 1
                first = self.pay_attempts[key] == 1
            if first:
                return 503, {"error": "try again"}, [("Retry-After", "0")]
            return 201, {"payment": "accepted", "key": key}, []
        if path == "/throttle":
            with self._lock:
                throttle, self.throttled = not self.throttled, True
            if throttle:
                return 429, {"error": "slow down"}, [("Retry-After", "1")]
            return 200, {"ok": True}, []
        if path == "/ping":
            return 200, {"ok": True}, []
        return 404, {"error": "no route"}, []

    @staticmethod
    def _slice(offset: int) -> list[dict[str, Any]]:
        return RECORDS[offset: offset + PAGE_SIZE]


def windows(times: list[float], width: float = 1.0) -> Iterator[int]:
    """How many arrivals each window of ``width`` seconds that starts at an arrival holds."""
    ordered = sorted(times)
    end = 0
    for start, first in enumerate(ordered):
        while end < len(ordered) and ordered[end] < first + width:
            end += 1
        yield end - start
