"""The ``rel="next"`` target of a response's ``Link`` headers (RFC 8288), as httpx reads them."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urljoin

import httpx


def next_link(headers: Sequence[tuple[str, str]], url: str) -> str | None:
    """The absolute URL of the next page, or None when the headers name none."""
    links = [value for name, value in headers if name.lower() == "link"]
    if not links:
        return None
    response = httpx.Response(200, headers=[("Link", ", ".join(links))])
    target = response.links.get("next", {}).get("url")
    return urljoin(url, target) if target else None
