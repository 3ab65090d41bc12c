"""A REST step -> what goes on the wire: URL, headers, body.

Encoding rules:

* ``path`` is joined to the alias base path. Literal text is kept as written (characters that
  cannot appear in a path are percent-encoded, existing ``%XX`` escapes are kept); the value of
  each data pill is percent-encoded as ONE segment (``/`` becomes ``%2F``, a value that is ``.``
  or ``..`` becomes ``%2E`` or ``%2E%2E``). A ``?`` in the literal path starts a query that is
  kept as written and comes before ``query``.
* a path never leaves the alias's base path: once rendered, its segments are read as a server
  reads them (percent-escapes decoded, ``%2F`` as ``/``, ``.`` and ``..`` resolved), and a path
  that climbs above where it starts is refused (``PathOutsideBaseError``), whether the ``..``
  came from a data pill or was written in the step. A ``..`` that stays inside is sent.
* ``query`` pairs keep their order and repeat; keys and values are percent-encoded (space is
  ``%20``). A null value is left out; a pill that gives an array repeats the key.
* headers: the connection's, then the step's, in order, duplicates kept; a null value is
  left out. A body's content type applies unless the step sets ``Content-Type``.
* bodies: ``json`` (compact UTF-8), ``text`` (``content_type``, default text/plain UTF-8),
  ``form`` (urlencoded pairs, in order), ``multipart`` (fields, then files, streamed), ``file``
  (streamed from disk with its length; never read into memory).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import attrs

from flowrun._errors import BodyFileChangedError, DataPillError, DefinitionError, PathOutsideBaseError
from flowrun._eval import render as render_value
from flowrun._eval import render_text, value_to_text
from flowrun._eval._template import OPEN
from flowrun._models._files import NotRegularFileError, open_regular
from flowrun._models._numbers import dumps
from flowrun._models._record import ValueRecord
from flowrun._models._steps import Body, FilePart, RestStep

if TYPE_CHECKING:
    from flowrun._registry import ResolvedConnection

_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = "/?:@!$&'()*+,;=-._~%"
_CHUNK = 64 * 1024
_JSON_TYPE = "application/json"
_TEXT_TYPE = "text/plain; charset=utf-8"
_FORM_TYPE = "application/x-www-form-urlencoded"
_FILE_TYPE = "application/octet-stream"


@attrs.frozen(eq=False, repr=False)
class Content(ValueRecord):
    """A body held in memory (json, text, form): sent again as is on a retry or redirect."""

    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")
    content_type: str


@attrs.frozen(eq=False, repr=False)
class FileUpload(ValueRecord):
    path: Path
    content_type: str


@attrs.frozen(eq=False, repr=False)
class Multipart(ValueRecord):
    fields: tuple[tuple[str, str], ...]
    files: tuple[tuple[str, FilePart], ...]


BodyPlan = Content | FileUpload | Multipart


@attrs.frozen(eq=False, repr=False)
class RequestPlan(ValueRecord):
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: BodyPlan | None = None


def plan_request(step: RestStep, resolved: ResolvedConnection, context: Mapping[str, Any] | None) -> RequestPlan:
    """Render the step's data pills and encode URL, headers and body. Without a context, a pill
    is an error (it names a value that does not exist), never sent as literal text.

    Raises ``DataPillError`` for a broken pill and ``DefinitionError`` for a body that cannot be sent.
    """
    scope: Mapping[str, Any] = context if context is not None else {}
    url = join_url(resolved.base_url, render_path(step.path, scope, step=step.id))
    url = add_query(url, _render_pairs(step.query, scope, step.id, "/query"))
    headers: list[tuple[str, str]] = list(resolved.headers.items())
    step_headers = _render_pairs(step.headers, scope, step.id, "/headers")
    headers.extend((name, value_to_text(value)) for name, value in step_headers if value is not None)
    body = plan_body(step.body, scope, step.id) if step.body is not None else None
    if isinstance(body, Content | FileUpload) and not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", body.content_type))
    if isinstance(body, Multipart):
        # httpx writes the multipart Content-Type with its boundary; one without a boundary would break it.
        headers = [(k, v) for k, v in headers if k.lower() != "content-type" or "boundary=" in v]
    return RequestPlan(step.method, url, tuple(headers), body)


def is_static(step: RestStep) -> bool:
    """True when the step holds no data pill: its plan does not depend on the context."""
    values: list[Any] = [step.path, *(v for _, v in step.query), *(v for _, v in step.headers)]
    if step.body is not None:
        values.append(step.body.value)
    return not any(_mentions_pill(value) for value in values)


def _mentions_pill(value: Any) -> bool:
    if isinstance(value, str):
        return OPEN in value
    if isinstance(value, Mapping):
        return any(_mentions_pill(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_mentions_pill(item) for item in value)
    return False


# --- URL ----------------------------------------------------------------------------------------


def encode_path(path: str, *, step: str | None = None, pointer: str = "/path") -> str:
    """The path as sent; ``PathOutsideBaseError`` when it climbs above the base path."""
    route, mark, query = path.partition("?")
    check_inside_base(route, step=step, pointer=pointer)
    if mark:
        return quote(route, safe=_PATH_SAFE) + "?" + quote(query, safe=_QUERY_SAFE)
    return quote(path, safe=_PATH_SAFE)


def render_path(template: str, context: Mapping[str, Any], *, step: str | None = None,
                pointer: str = "/path") -> str:
    """Render pills in a path; each pill's value is encoded as one path segment (or query value)."""
    # A pill value is fully percent-encoded, so encoding the whole path afterwards leaves it alone.
    return encode_path(render_text(template, context, escape=_encode_segment, step=step, pointer=pointer),
                       step=step, pointer=pointer)


def _encode_segment(value: Any) -> str:
    encoded = quote(value_to_text(value), safe="")
    # quote() keeps dots: a value "." or ".." would be a dot segment, which servers resolve.
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded


def check_inside_base(route: str, *, step: str | None = None, pointer: str = "/path") -> None:
    """Refuse a path whose segments, read as a server reads them, climb above where they start."""
    if "." not in route and "%" not in route:  # the common case: nothing to resolve
        return
    depth = 0
    for segment in unquote(route).split("/"):
        if segment == "..":
            depth -= 1
            if depth < 0:
                raise PathOutsideBaseError(
                    "the path climbs above the alias's base path ('..' once decoded and resolved): refused",
                    step=step, pointer=pointer)
        elif segment not in ("", "."):
            depth += 1


def join_url(base_url: str, path: str) -> str:
    if not path:
        return base_url
    if path.startswith("?"):
        return base_url + path
    return base_url + (path if path.startswith("/") else "/" + path)


def add_query(url: str, pairs: Sequence[tuple[str, Any]]) -> str:
    encoded = "&".join(
        f"{quote(name, safe='')}={quote(value_to_text(value), safe='')}" for name, value in pairs if value is not None
    )
    if not encoded:
        return url
    if "?" not in url:
        return f"{url}?{encoded}"
    return f"{url}{'' if url.endswith(('?', '&')) else '&'}{encoded}"


def _render_pairs(pairs: Sequence[tuple[str, Any]], context: Mapping[str, Any], step: str,
                  pointer: str) -> Sequence[tuple[str, Any]]:
    if not any(isinstance(value, str) and OPEN in value for _, value in pairs):
        return pairs
    rendered: list[tuple[str, Any]] = []
    for index, (name, value) in enumerate(pairs):
        result = render_value(value, context, step=step, pointer=f"{pointer}/{index}")
        if isinstance(result, list):
            rendered.extend((name, item) for item in result)
        else:
            rendered.append((name, result))
    return tuple(rendered)


# --- body ---------------------------------------------------------------------------------------


def plan_body(body: Body, context: Mapping[str, Any], step: str) -> BodyPlan:
    value = render_value(body.value, context, step=step, pointer="/body/value")
    if body.kind == "json":
        try:
            data = dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                         default=None).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise DefinitionError(f"the json body cannot be written as JSON: {exc}", step=step,
                                  pointer="/body") from None
        return Content(data, body.content_type or _JSON_TYPE)
    if body.kind == "text":
        text = value_to_text(value)
        return Content(text.encode("utf-8"), body.content_type or _TEXT_TYPE)
    if body.kind == "form":
        pairs = _pairs_of(value)
        form = "&".join(f"{quote(k, safe='')}={quote(value_to_text(v), safe='')}" for k, v in pairs if v is not None)
        return Content(form.encode("ascii"), body.content_type or _FORM_TYPE)
    if body.kind == "multipart":
        fields = tuple((k, value_to_text(v)) for k, v in _pairs_of(value) if v is not None)
        return Multipart(fields, tuple(body.files.items()))
    if body.kind == "file":
        if not isinstance(value, str | os.PathLike):
            raise DefinitionError("a file body needs the path of the file to upload", step=step, pointer="/body")
        return FileUpload(Path(value), body.content_type or _FILE_TYPE)
    raise DefinitionError(f"unknown body kind {body.kind!r}", step=step, pointer="/body/kind")


def _pairs_of(value: Any) -> list[tuple[str, Any]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        items: list[tuple[str, Any]] = []
        for key, item in value.items():
            if isinstance(item, list | tuple):
                items.extend((str(key), v) for v in item)
            else:
                items.append((str(key), item))
        return items
    if isinstance(value, list | tuple):
        return [(str(pair[0]), pair[1]) for pair in value]
    raise DataPillError(f"form and multipart fields are an object or a list of pairs, got {type(value).__name__}")


class SizedFile:
    """A file body as it is sent. Its length is announced (Content-Length) before the first byte
    goes out; a file that grows or shrinks meanwhile fails the step with ``BodyFileChangedError``
    instead of sending a body that does not match what was announced."""

    def __init__(self, handle: IO[bytes], path: Path, step: str) -> None:
        self._handle = handle
        self._path = path
        self._step = step
        self._size = os.fstat(handle.fileno()).st_size
        self._read = 0

    def fileno(self) -> int:  # httpx reads the announced length from it
        return self._handle.fileno()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._handle.seek(offset, whence)
        self._read = position
        return position

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size if size >= 0 else self._size - self._read + 1)
        self._read += len(data)
        if self._read > self._size or (size != 0 and not data and self._read < self._size):
            change = "grew past that" if self._read > self._size else f"ended after {self._read}"
            raise BodyFileChangedError(
                f"the file to upload {self._path} changed while it was sent: {self._size} bytes were announced "
                f"(Content-Length), the file {change}", step=self._step, pointer="/body")
        return data

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(_CHUNK):
            yield chunk

    def close(self) -> None:
        self._handle.close()


class OpenBody:
    """The files a body has open for one send; closed after the exchange."""

    def __init__(self) -> None:
        self.kwargs: dict[str, Any] = {}
        self.headers: list[tuple[str, str]] = []
        self._files: list[SizedFile] = []

    def open(self, path: Path, step: str) -> SizedFile:
        try:
            handle = open_regular(path)
        except NotRegularFileError as exc:
            raise DefinitionError(f"the file to upload {path} is {exc.kind}, not a file", step=step,
                                  pointer="/body", hint="upload a regular file: FIFOs and devices are never read"
                                  ) from None
        except OSError as exc:
            raise DefinitionError(f"cannot read the file to upload {path}: {exc.strerror or exc}", step=step,
                                  pointer="/body") from None
        sized = SizedFile(handle, path, step)
        self._files.append(sized)
        return sized

    @property
    def replayable(self) -> bool:
        """Whether the body can be sent again: bytes can, an open file being streamed cannot."""
        return not self._files

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        self._files.clear()


_NO_BODY = OpenBody()  # shared: nothing to open, nothing to close


def open_body(plan: BodyPlan | None, step: str, *, asynchronous: bool = False) -> OpenBody:
    """What ``build_request`` needs for a body. Files are opened anew for every send, so a retry
    or a 307/308 redirect sends the whole file again."""
    if plan is None:
        return _NO_BODY
    opened = OpenBody()
    try:
        if isinstance(plan, Content):
            opened.kwargs["content"] = plan.data
        elif isinstance(plan, FileUpload):
            handle = opened.open(plan.path, step)
            if asynchronous:
                opened.kwargs["content"] = _file_chunks(handle)
                opened.headers.append(("Content-Length", str(os.fstat(handle.fileno()).st_size)))
            else:
                opened.kwargs["content"] = handle  # httpx reads it in chunks and sends its length
        else:
            files = []
            for name, part in plan.files:
                handle = opened.open(part.path, step)
                files.append((name, (part.filename or part.path.name, handle,
                                     part.content_type or _FILE_TYPE)))
            data: dict[str, list[str]] = {}
            for key, value in plan.fields:
                data.setdefault(key, []).append(value)
            opened.kwargs["data"] = data
            opened.kwargs["files"] = files
    except BaseException:
        opened.close()
        raise
    return opened


async def _file_chunks(handle: SizedFile) -> AsyncIterator[bytes]:
    while chunk := handle.read(_CHUNK):
        yield chunk
