"""Redaction: which headers are credentials, which values are secrets, and the one masking function.

Every value flowrun sends as a secret (a credential's password, key, token or client secret, the
``Authorization`` value built from it, an OAuth token it fetched, the value of a header whose name
looks like a credential) is registered with the ``Secrets`` of the executor (or runner, or CLI
command) that sends it, once, when it is first sent. ``Secrets.mask`` replaces every registered
value, in every form it can take in output, with ``***``:

* as is, and with surrounding whitespace and line breaks trimmed (a secret file's last newline);
* percent-encoded (a query-string API key in a URL, a form-encoded client secret);
* base64 (Basic credentials, ``user:password``, and the value alone);
* JSON-, XML- and ``repr``-escaped, and as ``visible`` shows it, so that masking a finished
  artefact (a JSON or JUnit report, a printed line) finds values whose characters were escaped.

A partner that echoes what it received (a 500 page repeating our headers, an OAuth
``error_description`` repeating the client credentials) is masked too: flowrun knows every value it
sent. Values shorter than ``MIN_MASKED`` characters are not searched for in free text (they would
mask half of every report); their headers are still shown as ``***``.

EVERY output path calls ``Secrets.mask`` (text) or ``Secrets.mask_data`` (JSON-like data): error
messages and hints (``mask_error``, done by the executors on each failed result, so an embedder's
``str(error)`` is clean), body excerpts, the text, JSON and JUnit reports, ``-v`` lines, log records
(``flowrun._transport._log_redaction``). A new output (a body printed with ``--show-body``, a SOAP
fault's text) must go through it as well; never re-implement masking next to the output.

Registering is a set lookup per request; masking happens only when output is produced, so the
success path costs nothing measurable. ``Secrets`` is safe to share between threads; every live
``Secrets`` is known to the log filter (logging is process-wide), nothing else is global.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from flowrun._errors import FlowrunError

REDACTED = "***"
MIN_MASKED = 4

# Header names that carry credentials by definition, and words that make any header name look like
# one (X-Partner-Token, X-Session-Id, X-Signature, X-Api-Key...). One rule for ``alias show``, ``-v``,
# reports, reprs and redirects (such headers never go to another origin).
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
CREDENTIAL_HEADER_WORDS = ("auth", "token", "secret", "key", "password", "passwd", "session", "signature",
                           "cookie", "credential", "jwt")


@functools.lru_cache(maxsize=1024)  # header names are few; this runs for each header of each request
def is_credential_header(name: str) -> bool:
    """True when a header named ``name`` may carry a credential (its value is never shown)."""
    lowered = name.lower()
    return lowered in CREDENTIAL_HEADERS or any(word in lowered for word in CREDENTIAL_HEADER_WORDS)


def redact_headers(headers: Iterable[tuple[str, str]], extra: frozenset[str] = frozenset()) -> list[list[str]]:
    """Headers as ``[name, value]`` pairs, credential values as ``***`` (``extra``: more lowercase names)."""
    return [[k, REDACTED if is_credential_header(k) or k.lower() in extra else v] for k, v in headers]


# Header names partners echo back in JSON bodies (``["X-Api-Key", "..."]``): the credential headers
# and the common API-key and token headers.
_ECHOED_HEADERS = CREDENTIAL_HEADERS | {"x-api-key", "api-key", "x-auth-token"}
_SECRET_NAMES = r"password|passwd|passphrase|secret|client_secret|token|access_token|refresh_token|api_?key|nonce"


@functools.cache
def _secret_patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    # Compiled on first use: only -v and --show-body show bodies (~1 ms of every start-up otherwise).
    # WS-Security UsernameToken (<wsse:Password>, <wsse:Nonce>) and any element named like a secret.
    element = re.compile(rf"(<(?:[\w.-]+:)?(?:{_SECRET_NAMES}|BinarySecurityToken)\b[^>]*>)[^<]*(</)", re.I)
    # A JSON field named like a secret or a credential header, as "name": "value" or, as partners
    # that echo headers write them, ["name", "value"].
    json_field = re.compile(
        rf'("(?:{_SECRET_NAMES}|{"|".join(re.escape(name) for name in sorted(_ECHOED_HEADERS))})"\s*[:,]\s*)'
        r'"(?:[^"\\]|\\.)*"', re.I)
    form_field = re.compile(rf"((?:^|&)(?:{_SECRET_NAMES})=)[^&]*", re.I)
    return element, json_field, form_field


def redact_body(text: str) -> str:
    """A request or response body as shown by ``-v`` and ``--show-body``: values of elements,
    JSON fields and form fields named like secrets (password, token, secret, api key, nonce,
    WS-Security tokens) become ``***``."""
    element, json_field, form_field = _secret_patterns()
    text = element.sub(rf"\1{REDACTED}\2", text)
    text = json_field.sub(rf'\1"{REDACTED}"', text)
    return form_field.sub(rf"\1{REDACTED}", text)


def with_query_credential(url: str, parameter: str) -> str:
    """``url`` as shown when an API key is added to its query when sent: ``?api_key=***``."""
    return url + ("&" if "?" in url else "?") + f"{quote(parameter, safe='')}={REDACTED}"


# --- control characters -----------------------------------------------------------------------

# C0 controls but tab and line feed, DEL, C1 controls (0x9b is a one-byte CSI), and the Unicode
# bidirectional overrides that reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with control characters and escape sequences shown (``\\x1b``), never interpreted:
    a partner's bytes cannot move the cursor, erase a line or recolour a FAIL. CRLF line ends
    become plain line breaks; a lone carriage return is shown as ``\\x0d``."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(_escape, text.replace("\r\n", "\n"))


def visible_line(text: str) -> str:
    """``text`` as ``visible`` shows it, on one line: a partner's key or value quoted in an error
    message cannot start a line of its own (line breaks are shown as ``\\x0a``)."""
    return visible(text).replace("\n", "\\x0a")


# json.dumps(ensure_ascii=False) escapes C0 controls but leaves C1 controls and bidi overrides as is.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def json_visible(text: str) -> str:
    """JSON text with the control characters ``json.dumps`` leaves raw written as ``\\uXXXX``
    escapes (they only occur inside strings, so the JSON stays valid and means the same)."""
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


# --- the registry of secrets --------------------------------------------------------------------


def forms_of(value: str) -> set[str]:
    """Every form of ``value`` worth looking for in output (see the module docstring)."""
    bases = {value, value.strip(), value.strip("\r\n")}
    found: set[str] = set()
    for base in bases:
        if len(base) < MIN_MASKED:
            continue
        raw = base.encode("utf-8", "surrogatepass")
        found.update({
            base, quote(base, safe=""), quote(base), quote_plus(base),
            base64.b64encode(raw).decode("ascii").rstrip("="),
            base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="),
            json.dumps(base)[1:-1], json.dumps(base, ensure_ascii=False)[1:-1],
            html.escape(base, quote=True), html.escape(base, quote=False), repr(base)[1:-1], visible(base),
        })
    return {form for form in found if len(form) >= MIN_MASKED}


_LIVE: weakref.WeakSet[Secrets] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


class Secrets:
    """The secrets one executor, runner or command sent; ``mask`` hides them in output."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self.add_all(values)
        with _LIVE_LOCK:
            _LIVE.add(self)

    def __repr__(self) -> str:
        return f"Secrets({len(self._values)} values)"

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def add(self, value: str | None) -> None:
        """Register a value that is sent as a secret (cheap when it is known already)."""
        if not value or value in self._values:
            return
        forms = forms_of(value)
        with self._lock:
            self._values.add(value)
            if not forms <= self._forms:
                self._forms |= forms
                self._pattern = None

    def add_all(self, values: Iterable[str]) -> None:
        for value in values:
            self.add(value)

    def basic(self, username: str, password: str) -> None:
        """Register Basic credentials: the password, and ``user:password`` (base64 forms follow)."""
        self.add(password)
        self.add(f"{username}:{password}")

    def _compiled(self) -> re.Pattern[str] | None:
        pattern = self._pattern
        if pattern is None and self._forms:
            with self._lock:
                # Longest first: a form that contains another is replaced whole.
                ordered = sorted(self._forms, key=lambda form: (-len(form), form))
                pattern = self._pattern = re.compile("|".join(re.escape(form) for form in ordered))
        return pattern

    def mask(self, text: str) -> str:
        """``text`` with every form of every registered secret replaced by ``***``."""
        if not text or not self._forms:
            return text
        pattern = self._compiled()
        return pattern.sub(REDACTED, text) if pattern is not None else text

    def mask_data(self, data: Any) -> Any:
        """JSON-like ``data`` (dicts, lists, strings; keys too) with every string masked."""
        if not self._forms:
            return data
        return _mask_data(data, self.mask, 0)

    def mask_error(self, error: FlowrunError) -> FlowrunError:
        """Mask an error's message and hint in place (``str(error)`` included) and return it."""
        if not self._forms:
            return error
        error.message = self.mask(error.message)
        error.hint = self.mask(error.hint) if error.hint else error.hint
        error.args = tuple(self.mask(arg) if isinstance(arg, str) else arg for arg in error.args)
        for name, value in vars(error).items():
            if name not in ("message", "hint") and isinstance(value, str | Mapping | list | tuple):
                setattr(error, name, self.mask_data(value))  # an assertion's actual, a fault's detail
        return error


_MAX_DEPTH = 200


def _mask_data(data: Any, mask: Callable[[str], str], depth: int) -> Any:
    if isinstance(data, str):
        return mask(data)
    if depth > _MAX_DEPTH and isinstance(data, Mapping | list | tuple):
        return f"<nested deeper than {_MAX_DEPTH} levels: not shown>"
    if isinstance(data, Mapping):
        return {mask(k) if isinstance(k, str) else k: _mask_data(v, mask, depth + 1) for k, v in data.items()}
    if isinstance(data, list):
        return [_mask_data(item, mask, depth + 1) for item in data]
    if isinstance(data, tuple):
        return tuple(_mask_data(item, mask, depth + 1) for item in data)
    return data


def live_secrets() -> Iterator[Secrets]:
    """Every ``Secrets`` in use in the process (for process-wide outputs: log records)."""
    with _LIVE_LOCK:
        current = list(_LIVE)
    yield from current


def mask_everywhere(text: str) -> str:
    """``text`` masked with every live ``Secrets``: for log records, which belong to no one run."""
    for secrets in live_secrets():
        text = secrets.mask(text)
    return text
