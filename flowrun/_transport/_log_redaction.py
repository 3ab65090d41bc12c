"""Log records from httpx (logger ``httpx``, INFO: every request line with its full URL), httpcore
(its ``httpcore.*`` loggers, DEBUG: every response's headers) and flowrun (logger ``flowrun``) go
through the one masking function before any handler sees them: the values every live ``Secrets``
holds are masked (an API key sent as a query parameter, a token a partner echoes in a header),
the query parameters named by credentials are shown as ``***`` even before their value is
registered, and control characters are made visible."""

from __future__ import annotations

import logging
import threading
from urllib.parse import unquote_plus

import httpx

from flowrun._models._redact import REDACTED, mask_everywhere, visible

_names: set[str] = set()
_lock = threading.Lock()


class _MaskSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = visible(mask_everywhere(record.msg))
        if isinstance(record.args, tuple):
            record.args = tuple(_clean(arg) for arg in record.args)
        return True


def _clean(arg: object) -> object:
    if isinstance(arg, httpx.URL):
        return visible(mask_everywhere(_masked(arg)))
    if isinstance(arg, str):
        return visible(mask_everywhere(arg))
    return arg


_FILTER = _MaskSecrets()


def install() -> None:
    """Put the filter on the loggers flowrun's requests write to (idempotent)."""
    # A logger's filters see only the records logged on it, not its children's: each is named.
    for name in ("httpx", "flowrun", "httpcore.connection", "httpcore.http11", "httpcore.http2"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def mask_query_parameter(name: str) -> None:
    """Mask the value of query parameter ``name`` in httpx's log records from now on."""
    with _lock:
        _names.add(name)
    install()


def _masked(url: httpx.URL) -> str:
    query = url.query.decode("ascii", "replace")
    parts = query.split("&") if query else []
    kept = [f"{part.split('=', 1)[0]}={REDACTED}" if unquote_plus(part.split("=", 1)[0]) in _names else part
            for part in parts]
    return str(url.copy_with(query="&".join(kept).encode("ascii"))) if kept != parts else str(url)
