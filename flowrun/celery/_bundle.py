"""A self-contained bundle of a flow: its file, the step definitions it uses and its local WSDLs.

A task carries the bundle instead of paths, so a worker needs no copy of the flow's folder; it never
carries aliases, keystores or secrets (workers have their own). Files keep their layout relative
to a common root, so relative references (``uses``, ``wsdl``, a WSDL's ``schemaLocation``) work
unchanged once the worker has written them out. Workers cache what they built from a bundle by
its digest: a run of a million rows loads its flow once per worker process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path, PurePosixPath
from typing import Any

from flowrun._errors import DefinitionError
from flowrun._models._flow import Flow
from flowrun._models._steps import SoapStep

__all__ = ["BundleCache", "make_bundle"]

_MAX_BUNDLE_BYTES = 16 << 20
_CACHED_BUNDLES = 32


def make_bundle(flow_path: Path, flow: Flow) -> dict[str, Any]:
    """``{"digest", "flow", "steps_dirs", "files": {relative path: text}}`` for a loaded flow."""
    files: dict[Path, str] = {}
    steps_dirs: list[Path] = []
    _add(files, flow_path.resolve())
    for entry in flow.steps:
        if entry.uses is not None and entry.uses.origin.file is not None:
            definition = entry.uses.origin.file.resolve()
            _add(files, definition)
            if definition.parent not in steps_dirs:
                steps_dirs.append(definition.parent)
        step = entry.step
        if isinstance(step, SoapStep) and step.wsdl and "{{" not in step.wsdl and "://" not in step.wsdl:
            base = step.base_dir or step.origin.directory
            _add_xml(files, (base / step.wsdl).resolve())
    root = Path(os.path.commonpath([str(path.parent) for path in files]))
    texts = {(path.relative_to(root)).as_posix(): text for path, text in files.items()}
    if sum(len(text) for text in texts.values()) > _MAX_BUNDLE_BYTES:
        raise DefinitionError(f"the flow and the files it uses exceed {_MAX_BUNDLE_BYTES >> 20} MiB",
                              file=flow_path, hint="a task carries its flow: keep large files out of it")
    bundle: dict[str, Any] = {
        "flow": flow_path.resolve().relative_to(root).as_posix(),
        "steps_dirs": [directory.relative_to(root).as_posix() for directory in steps_dirs],
        "files": texts,
    }
    bundle["digest"] = hashlib.sha256(json.dumps(bundle, sort_keys=True).encode()).hexdigest()
    return bundle


def _add(files: dict[Path, str], path: Path) -> None:
    if path not in files:
        files[path] = path.read_text(encoding="utf-8")


def _add_xml(files: dict[Path, str], path: Path) -> None:
    """A WSDL, and the local schemas and WSDLs it imports or includes, transitively."""
    if path in files or not path.is_file():
        return  # a missing WSDL fails on the worker with the loader's own error
    _add(files, path)
    from lxml import etree

    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        tree = etree.fromstring(files[path].encode("utf-8"), parser)
    except etree.XMLSyntaxError:
        return
    for element in tree.iter():
        for attribute in ("schemaLocation", "location"):
            target = element.get(attribute)
            if target and "://" not in target and element.tag.rsplit("}", 1)[-1] in ("import", "include"):
                _add_xml(files, (path.parent / target).resolve())


class BundleCache:
    """Per worker process: bundle digest -> the loaded flow, its files written to a private directory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flows: OrderedDict[str, tuple[Flow, Path]] = OrderedDict()

    def flow(self, bundle: dict[str, Any]) -> Flow:
        digest = str(bundle.get("digest", ""))
        with self._lock:
            cached = self._flows.get(digest)
            if cached is not None:
                self._flows.move_to_end(digest)
                return cached[0]
        from flowrun._load._flows import load_flow

        directory = Path(tempfile.mkdtemp(prefix="flowrun-bundle-"))
        for name, text in dict(bundle["files"]).items():
            target = directory / _safe_relative(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(str(text), encoding="utf-8")
        flow = load_flow(directory / _safe_relative(bundle["flow"]),
                         steps_dirs=[directory / _safe_relative(d) for d in bundle.get("steps_dirs", ())])
        with self._lock:
            self._flows[digest] = (flow, directory)
            while len(self._flows) > _CACHED_BUNDLES:
                _, (_, old) = self._flows.popitem(last=False)
                shutil.rmtree(old, ignore_errors=True)
        return flow

    def clear(self) -> None:
        with self._lock:
            for _, directory in self._flows.values():
                shutil.rmtree(directory, ignore_errors=True)
            self._flows.clear()


def _safe_relative(name: str) -> Path:
    # A task comes from the broker: its paths must stay inside the bundle's directory.
    path = PurePosixPath(str(name))
    if path.is_absolute() or ".." in path.parts or not path.parts or "\x00" in str(name):
        raise DefinitionError(f"a bundle names the file {str(name)!r} outside its own directory",
                              hint="bundles are made by `flowrun run --broker`; check what enqueues tasks")
    return Path(*path.parts)
