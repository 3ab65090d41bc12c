"""Pagination of REST steps: which page comes next, and the items collected so far.

``Pager`` is protocol-neutral bookkeeping shared by the sync and async REST executors: ``first``
gives the request of the first page; ``add`` takes each page's response, collects its items
(``paginate.items``, JMESPath over ``{status, headers, body}``) and gives the request of the
next page, or None after the last one. The styles (see ``Paginate``):

* ``link``: the ``Link`` header's ``rel="next"`` URL;
* ``next_url``: the URL ``paginate.next`` gives (relative URLs are read against the page's URL);
* ``cursor``: the value ``paginate.next`` gives, sent as the query parameter ``paginate.param``;
* ``page`` / ``offset``: ``paginate.param`` counts pages (from ``start``, default 1) or items
  (from ``start``, default 0); a page with no items, or fewer than ``limit``, is the last.

A next URL must be on an origin the alias's origin rule trusts (``NextPageRefusedError``): a
partner's page cannot send the credential and client certificate elsewhere. More pages than
``max_pages`` fail the step (``PageLimitError``) rather than silently stop short.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import attrs

from flowrun._errors import CaptureError, NextPageRefusedError, PageLimitError, PaginationError
from flowrun._eval import capture_json, value_to_text
from flowrun._models._results import Attempt, PageInfo
from flowrun._models._steps import Paginate
from flowrun._models._web_origin import OriginRule
from flowrun._runner import Received
from flowrun._transport._links import next_link
from flowrun._transport._request import RequestPlan


def with_param(url: str, name: str, value: Any) -> str:
    """``url`` with the query parameter ``name`` set to ``value`` (other parameters kept as written)."""
    parts = urlsplit(url)
    kept = [pair for pair in parts.query.split("&") if pair and pair.split("=", 1)[0] != quote(name, safe="")]
    kept.append(f"{quote(name, safe='')}={quote(value_to_text(value), safe='')}")
    return urlunsplit(parts._replace(query="&".join(kept)))


class Pager:
    def __init__(self, spec: Paginate, rule: OriginRule) -> None:
        self.spec = spec
        self.rule = rule
        self.items: list[Any] = []
        self.pages: list[PageInfo] = []
        self.counter = spec.first_number
        self._base = ""

    def first(self, plan: RequestPlan) -> RequestPlan:
        spec = self.spec
        url = plan.url
        if spec.limit_param is not None:
            url = with_param(url, spec.limit_param, spec.limit)
        if spec.style in ("page", "offset"):
            assert spec.param is not None
            url = with_param(url, spec.param, self.counter)
        self._base = url
        return attrs.evolve(plan, url=url)

    def add(self, plan: RequestPlan, received: Received, *, url: str, began: float,
            attempts: Sequence[Attempt], key: str | None) -> RequestPlan | None:
        """Record a page that was answered as expected; the next page's request, or None."""
        spec = self.spec
        number = len(self.pages) + 1
        document = received.document()
        items = self._items(document, number)
        self.items.extend(items)
        self.pages.append(PageInfo(number, url, received.status, (time.perf_counter() - began) * 1000.0,
                                   len(items), len(attempts), key))
        target = self._next(document, received, url, items)
        if target is None:
            return None
        if number >= spec.max_pages:
            raise PageLimitError(f"page {number} has a next page, and paginate.max_pages is {spec.max_pages}; "
                                 f"{len(self.items)} items collected so far")
        return attrs.evolve(plan, url=target)

    def failed(self, url: str, status: int | None, began: float, attempts: Sequence[Attempt], key: str | None) -> None:
        """Record a page that failed (it ends the step)."""
        self.pages.append(PageInfo(len(self.pages) + 1, url, status, (time.perf_counter() - began) * 1000.0, 0,
                                   len(attempts), key))

    def _items(self, document: dict[str, Any], number: int) -> list[Any]:
        try:
            value = capture_json(self.spec.items, document)
        except CaptureError as error:
            raise PaginationError(f"paginate.items: {error.message}") from None
        if not isinstance(value, list):
            from flowrun._eval._capture import shape_of

            raise PaginationError(f"paginate.items '{self.spec.items}' gives {shape_of(value)} on page {number}, "
                                  f"not an array; the page is {shape_of(document.get('body'))}")
        return value

    def _next(self, document: dict[str, Any], received: Received, url: str, items: list[Any]) -> str | None:
        spec = self.spec
        if spec.style in ("page", "offset"):
            if not items or (spec.limit is not None and len(items) < spec.limit):
                return None
            self.counter += 1 if spec.style == "page" else len(items)
            assert spec.param is not None
            return with_param(self._base, spec.param, self.counter)
        if spec.style == "link":
            return self._checked(next_link(received.headers, url), url)
        assert spec.next is not None
        try:
            value = capture_json(spec.next, document)
        except CaptureError as error:
            raise PaginationError(f"paginate.next: {error.message}") from None
        if value is None or value == "":
            return None
        if spec.style == "next_url":
            if not isinstance(value, str):
                raise PaginationError(f"paginate.next '{spec.next}' gives a {type(value).__name__}, not a URL")
            return self._checked(urljoin(url, value), url)
        assert spec.param is not None
        if isinstance(value, dict | list):
            raise PaginationError(f"paginate.next '{spec.next}' gives a {type(value).__name__}, not a cursor")
        return with_param(self._base, spec.param, value)

    def _checked(self, target: str | None, url: str) -> str | None:
        if target is None:
            return None
        if not self.rule.trusts_url(target):
            shown = urlunsplit(urlsplit(target)._replace(query="", fragment=""))
            raise NextPageRefusedError(f"the next page after {url.split('?', 1)[0]} is on another origin: {shown} "
                                       f"(the alias's origins: {self.rule.describe()}); refused")
        if target == url:
            return None  # a page that names itself as next: the list is at its end
        return target
