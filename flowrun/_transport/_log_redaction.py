"""httpx logs every request line with its full URL (logger ``httpx``, INFO): an API key sent as a
query parameter would land in the logs of anyone who turns logging on. The query parameters
named by credentials are masked in those records before any handler sees them."""

from __future__ import annotations

import logging
import threading
from urllib.parse import unquote_plus

import httpx

from flowrun._models._results import REDACTED

_names: set[str] = set()
_lock = threading.Lock()


class _MaskCredentialQuery(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, httpx.URL) for arg in record.args):
            record.args = tuple(_masked(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args)
        return True


_FILTER = _MaskCredentialQuery()


def mask_query_parameter(name: str) -> None:
    """Mask the value of query parameter ``name`` in httpx's log records from now on."""
    with _lock:
        _names.add(name)
        logger = logging.getLogger("httpx")
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def _masked(url: httpx.URL) -> str:
    query = url.query.decode("ascii", "replace")
    parts = query.split("&") if query else []
    kept = [f"{part.split('=', 1)[0]}={REDACTED}" if unquote_plus(part.split("=", 1)[0]) in _names else part
            for part in parts]
    return str(url.copy_with(query="&".join(kept).encode("ascii"))) if kept != parts else str(url)
