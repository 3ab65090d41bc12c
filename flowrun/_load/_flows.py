"""Flow files and reusable step definitions -> models.

Each file is validated once against its schema (``flow`` or ``step``), then built into records.
Errors carry the file, the JSON pointer and the line. Relative paths (``wsdl``, body files,
``save_to``) are resolved against the file that names them: a step definition used by a flow in
another directory still finds its WSDL next to itself.

``uses`` names a definition on the steps search path: the flow's directory, ``./steps``, then
the directories given with ``--steps``. The first match wins.

``FlowLoader(collect=True)`` gathers every problem instead of raising the first one; ``flowrun
validate`` uses it to report all problems of a file at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from flowrun._errors import DefinitionError, FlowrunError, SchemaError, UnknownReferenceError
from flowrun._load._aliases import connection_from, retry_policy_from
from flowrun._load._json import MAX_FILE_BYTES, JsonDocument, read_json_file
from flowrun._load._paths import is_file, resolve_path
from flowrun._load._schema import check, did_you_mean, iter_schema_errors
from flowrun._models._files import open_regular
from flowrun._models._flow import NO_DEFAULT, Flow, FlowEnvVar, FlowInput, FlowStep, StepDefinition
from flowrun._models._origin import Origin
from flowrun._models._steps import Body, FilePart, Paginate, ResponseSpec, RestStep, SoapStep, Step

DEFAULT_STEPS_DIR = "steps"
_STEP_ENTRY_KEYS = ("id", "uses", "with", "when", "on_error", "assert", "description", "for_each", "concurrency")


def steps_search_path(flow_file: Path | None, extra: Iterable[Path] = ()) -> tuple[Path, ...]:
    """The flow's directory, ``./steps``, then ``extra``: where ``uses`` looks for definitions."""
    dirs: list[Path] = []
    if flow_file is not None:
        dirs.append(flow_file.resolve().parent)
    dirs.append((Path.cwd() / DEFAULT_STEPS_DIR).resolve())
    dirs.extend(Path(d).resolve() for d in extra)
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return tuple(unique)


def load_flow(path: str | Path, *, steps_dirs: Iterable[Path] = ()) -> Flow:
    """Read, validate and build a flow file; raise the first ``DefinitionError``."""
    flow = FlowLoader(steps_dirs=steps_dirs).load(Path(path))
    assert flow is not None
    return flow


def looks_like_flow(path: Path) -> bool:
    """A cheap guess for directory scans: a JSON object with ``name`` and a ``steps`` array."""
    try:
        with open_regular(path) as handle:  # a FIFO in a scanned folder must not hang the scan
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            return False  # a data file, not a flow; a scan must not hold it in memory
        data = json.loads(raw.decode("utf-8-sig"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and isinstance(data.get("steps"), list) and "name" in data


class FlowLoader:
    """Builds flows; caches step definitions by path, so a definition used twice is read once."""

    def __init__(self, *, steps_dirs: Iterable[Path] = (), collect: bool = False) -> None:
        self.steps_dirs = tuple(Path(d) for d in steps_dirs)
        self.collect = collect
        self.problems: list[FlowrunError] = []
        # Per flow file (collect mode): ids of the steps reported and left out of the flow.
        self.refused_steps: dict[Path, frozenset[str]] = {}
        self._definitions: dict[Path, StepDefinition | None] = {}

    def _report(self, error: FlowrunError) -> None:
        if not self.collect:
            raise error
        self.problems.append(error)

    # --- flows ----------------------------------------------------------------------------

    def load(self, path: Path) -> Flow | None:
        """The flow in ``path``; in collect mode None when it cannot be built at all."""
        try:
            document = read_json_file(path)
        except FlowrunError as error:
            self._report(error)
            return None
        return self.from_document(document)

    def from_document(self, document: JsonDocument) -> Flow | None:
        data = document.data
        if not isinstance(data, dict):
            self._report(SchemaError("a flow file holds one JSON object with 'name' and 'steps'",
                                     file=document.path, line=1))
            return None
        steps = data.get("steps")
        for raw in steps if isinstance(steps, list) else ():
            _normalise_case(raw)
        bad_steps: set[int] = set()
        if self.collect:
            errors = _schema_errors(data, document, "flow")
            for error in errors:
                self.problems.append(error)
                index = _step_index(error.pointer)
                if index is None:
                    return None  # the frame of the file is wrong: building on it would mislead
                bad_steps.add(index)
        else:
            _check(data, document, "flow")
        origin = Origin(document.path, "", document.line(""))
        search = steps_search_path(document.path, self.steps_dirs)
        entries: list[FlowStep] = []
        refused: set[str] = set()
        for index, raw in enumerate(data["steps"]):
            pointer = f"/steps/{index}"
            if index not in bad_steps:
                try:
                    entries.append(self._flow_step(raw, document, pointer, search))
                    continue
                except FlowrunError as error:
                    self._report(_placed(error, document, pointer))
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                refused.add(raw["id"])
        if document.path is not None:
            # Later pills that read a refused step are not errors of their own: one error, no echo.
            self.refused_steps[document.path.resolve()] = frozenset(refused)
        try:
            inputs = _inputs(data.get("inputs", {}), document, "/inputs")
            env = _env(data.get("env"), document, "/env")
            entries = self._unique(entries)
            return Flow(name=data["name"], description=data.get("description", ""), inputs=inputs, env=env,
                        steps=entries, outputs=dict(data.get("outputs", {})), origin=origin)
        except FlowrunError as error:
            self._report(_placed(error, document, ""))
            return None

    def _unique(self, entries: list[FlowStep]) -> list[FlowStep]:
        """In collect mode a duplicate id is reported and dropped so the rest can be checked."""
        if not self.collect:
            return entries
        kept: dict[str, FlowStep] = {}
        for entry in entries:
            first = kept.get(entry.id)
            if first is None:
                kept[entry.id] = entry
                continue
            self.problems.append(SchemaError(
                f"step id '{entry.id}' is used twice (first at line {first.origin.line})",
                hint="step ids name the step in data pills (steps.<id>): make them unique",
                **entry.origin.location()))
        return list(kept.values())

    def _flow_step(self, raw: dict[str, Any], document: JsonDocument, pointer: str,
                   search: Sequence[Path]) -> FlowStep:
        origin = Origin(document.path, pointer, document.line(pointer))
        if "uses" not in raw:
            step = build_step(raw, document, pointer, step_id=raw["id"])
            return FlowStep(step=step, origin=origin)
        definition_path = find_definition(raw["uses"], search, origin.child("uses", line=document.line(
            f"{pointer}/uses")))
        definition = self.definition(definition_path)
        if definition is None:
            raise DefinitionError(f"step definition {definition_path} has errors (reported above)",
                                  **origin.location())
        changes: dict[str, Any] = {"id": raw["id"]}
        if "when" in raw:
            changes["when"] = raw["when"]
        if "on_error" in raw:
            changes["on_error"] = raw["on_error"]
        if "description" in raw:
            changes["description"] = raw["description"]
        for name in ("for_each", "concurrency"):
            if name in raw:
                changes[name] = raw[name]
        step = attrs.evolve(definition.step, **changes)
        return FlowStep(step=step, uses=definition, arguments=dict(raw.get("with", {})),
                        assertions=tuple(raw.get("assert", ())), origin=origin)

    # --- step definitions -----------------------------------------------------------------

    def definition(self, path: Path) -> StepDefinition | None:
        path = path.resolve()
        if path in self._definitions:
            return self._definitions[path]
        self._definitions[path] = None  # a definition cannot use itself
        try:
            result = self._build_definition(read_json_file(path))
        except FlowrunError as error:
            self._report(error)
            result = None
        self._definitions[path] = result
        return result

    def _build_definition(self, document: JsonDocument) -> StepDefinition | None:
        data = document.data
        _normalise_case(data)
        if self.collect:
            errors = _schema_errors(data, document, "step")
            if errors:
                self.problems.extend(errors)
                return None
        else:
            _check(data, document, "step")
        assert document.path is not None
        name = data.get("name", document.path.stem)
        step = build_step(data, document, "", step_id=_identifier(name))
        return StepDefinition(
            name=name, step=step, inputs=_inputs(data.get("inputs", {}), document, "/inputs"),
            env=_env(data.get("env"), document, "/env"), description=data.get("description", ""),
            origin=Origin(document.path, "", document.line("")),
        )


def _normalise_case(raw: Any) -> None:
    """Step types and HTTP methods in any case: ``"REST"`` is ``"rest"``, ``"post"`` is ``"POST"``."""
    if not isinstance(raw, dict):
        return
    if isinstance(raw.get("type"), str):
        raw["type"] = raw["type"].lower()
    if isinstance(raw.get("method"), str):
        raw["method"] = raw["method"].upper()


def find_definition(name: str, search: Sequence[Path], origin: Origin) -> Path:
    """The file a ``uses`` names: a path relative to the flow file, or a name on the search path."""
    candidates: list[Path] = []
    if "/" in name or "\\" in name or name.endswith(".json"):
        candidates.append(origin.directory / name)
    stem = name.removesuffix(".json")
    candidates.extend(directory / f"{stem}.json" for directory in search)
    for candidate in candidates:
        if is_file(candidate):
            return candidate.resolve()
    known = sorted({p.stem for d in search if d.is_dir() for p in d.glob("*.json") if not looks_like_flow(p)})
    listing = ", ".join(known) if known else "none"
    raise UnknownReferenceError(
        f"no step definition named '{name}'{did_you_mean(stem, known)}",
        hint=f"looked in {', '.join(str(d) for d in search)} (definitions there: {listing}); "
        "add a directory with --steps DIR",
        **origin.location(),
    )


# --- steps --------------------------------------------------------------------------------


def build_step(raw: Mapping[str, Any], document: JsonDocument, pointer: str, *, step_id: str) -> Step:
    """A RestStep or SoapStep from schema-valid JSON at ``pointer`` of ``document``."""
    try:
        return _build_step(raw, document, pointer, step_id)
    except FlowrunError as error:
        raise _placed(error, document, pointer) from None


def _build_step(raw: Mapping[str, Any], document: JsonDocument, pointer: str, step_id: str) -> Step:
    origin = Origin(document.path, pointer, document.line(pointer))
    base = origin.directory
    common: dict[str, Any] = {
        "id": step_id,
        "alias": raw.get("alias"),
        "timeout_s": raw.get("timeout_s"),
        "assertions": tuple(raw.get("assert", ())),
        "when": raw.get("when"),
        "on_error": raw.get("on_error", "stop"),
        "description": raw.get("description", ""),
        "for_each": raw.get("for_each"),
        "concurrency": raw.get("concurrency", 1),
        "origin": origin,
    }
    if "connection" in raw:
        sub = f"{pointer}/connection"
        common["connection"] = connection_from(raw["connection"], Origin(document.path, sub), document)
    if "retry_policy" in raw:
        common["retry_policy"] = retry_policy_from(raw["retry_policy"])
    if "response" in raw:
        common["response"] = _response(raw["response"], base)
    if raw["type"] == "soap":
        return SoapStep(
            **common, wsdl=raw.get("wsdl"), service=raw.get("service"), port=raw.get("port"),
            operation=raw.get("operation"), args=dict(raw.get("args", {})),
            soap_headers=dict(raw.get("soap_headers", {})), headers=raw.get("headers"),
            soap_action=raw.get("soap_action"), soap_version=raw.get("soap_version"),
            envelope=raw.get("envelope"), path=raw.get("path"), base_dir=base, strict=raw.get("strict", True),
        )
    return RestStep(
        **common, method=raw.get("method", "GET"), path=raw.get("path", ""), query=raw.get("query"),
        headers=raw.get("headers"), body=_body(raw["body"], base) if "body" in raw else None,
        follow_redirects=raw.get("follow_redirects", False), max_redirects=raw.get("max_redirects", 5),
        paginate=(Paginate(**raw["paginate"], origin=origin.child("paginate")) if "paginate" in raw else None),
        idempotency_key=raw.get("idempotency_key", False),
    )


def _response(raw: Mapping[str, Any], base: Path) -> ResponseSpec:
    expect = raw.get("expect_status")
    return ResponseSpec(
        expect_status=tuple(expect) if expect is not None else None,
        parse=raw.get("parse", "auto"),
        outputs=dict(raw.get("outputs", {})), expect_fault=bool(raw.get("expect_fault", False)),
        namespaces=dict(raw.get("namespaces", {})),
        save_to=_path(base, raw["save_to"]) if "save_to" in raw else None,
        **({"max_bytes": raw["max_bytes"]} if "max_bytes" in raw else {}),
    )


def _body(raw: Mapping[str, Any], base: Path) -> Body:
    content_type = raw.get("content_type")
    if "json" in raw:
        return Body("json", raw["json"], content_type)
    if "text" in raw:
        return Body("text", raw["text"], content_type)
    if "form" in raw:
        return Body("form", raw["form"], content_type)
    if "multipart" in raw:
        files = {name: _file_part(spec, base) for name, spec in raw.get("files", {}).items()}
        return Body("multipart", raw["multipart"], content_type, files)
    return Body("file", _path(base, raw["file"]), content_type)


def _file_part(spec: str | Mapping[str, Any], base: Path) -> FilePart:
    if isinstance(spec, str):
        return FilePart(_path(base, spec))
    return FilePart(_path(base, spec["path"]), spec.get("filename"), spec.get("content_type"))


def _path(base: Path, value: str) -> Path:
    return resolve_path(base, value)


# --- inputs and env -----------------------------------------------------------------------


def _inputs(raw: Mapping[str, Any], document: JsonDocument, pointer: str) -> dict[str, FlowInput]:
    result: dict[str, FlowInput] = {}
    for name, spec in raw.items():
        sub = f"{pointer}/{name}"
        result[name] = FlowInput(
            type=spec.get("type", "string"), default=spec.get("default", NO_DEFAULT),
            required=spec.get("required"), description=spec.get("description", ""),
            origin=Origin(document.path, sub, document.line(sub)),
        )
    return result


def _env(raw: Any, document: JsonDocument, pointer: str) -> dict[str, FlowEnvVar]:
    if raw is None:
        return {}
    if isinstance(raw, list):
        return {name: FlowEnvVar(origin=Origin(document.path, f"{pointer}/{i}", document.line(f"{pointer}/{i}")))
                for i, name in enumerate(raw)}
    result: dict[str, FlowEnvVar] = {}
    for name, spec in raw.items():
        sub = f"{pointer}/{name}"
        result[name] = FlowEnvVar(default=spec.get("default"), required=spec.get("required", "default" not in spec),
                                  description=spec.get("description", ""),
                                  origin=Origin(document.path, sub, document.line(sub)))
    return result


# --- helpers ------------------------------------------------------------------------------


def _schema_errors(data: Any, document: JsonDocument, schema_name: str) -> list[SchemaError]:
    errors = iter_schema_errors(data, document, schema_name=schema_name)
    # "give exactly one of" without a "found" part only repeats an unknown field of the same object.
    unknown = {(e.pointer or "").rsplit("/", 1)[0] for e in errors if e.message.startswith("unknown field")}
    kept = [e for e in errors if not (e.message.startswith("give exactly one of") and "; found" not in e.message
                                       and e.pointer in unknown)]
    for error in kept:
        _schema_hint(error, schema_name)
    return kept


def _check(data: Any, document: JsonDocument, schema_name: str) -> None:
    try:
        check(data, document, schema_name=schema_name)
    except SchemaError as error:
        raise _schema_hint(error, schema_name) from None


def _schema_hint(error: SchemaError, schema_name: str) -> SchemaError:
    if error.hint == SchemaError.default_hint:
        error.hint = f"see `flowrun schema {schema_name}` and docs/flows.md for the fields a {schema_name} accepts"
    return error


def _identifier(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"_{cleaned}"


def _step_index(pointer: str | None) -> int | None:
    parts = (pointer or "").split("/")
    if len(parts) >= 3 and parts[1] == "steps" and parts[2].isdigit():
        return int(parts[2])
    return None


def _placed(error: FlowrunError, document: JsonDocument, pointer: str) -> FlowrunError:
    """Give an error raised by a record without an origin the place it came from."""
    if error.file is None:
        error.file = str(document.path) if document.path is not None else None
        if error.pointer is None:
            error.pointer = pointer or None
            error.line = document.line(pointer)
    return error
