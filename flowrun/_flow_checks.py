"""Static checks of flows, without network: what ``flowrun validate`` reports after the schema.

* data pills: syntax, and the names they read: declared inputs, steps that run before, declared
  env variables (a reusable step definition reads only its own inputs and env);
* ``when`` expressions, ``with`` arguments of ``uses`` entries, assertions, response outputs;
* SOAP steps against their WSDL (local files only: a WSDL URL, or a schema a local WSDL imports
  over http(s), is not fetched, and a note says so): the WSDL loads, the service/port is
  unambiguous, the ``soap_version`` asked for has a port, the operation exists, and ``args``
  name the operation's input elements (nested ones too) with none of the required ones missing;
* a ``..`` written in a step's path that climbs above the alias's base path;
* references: every alias exists and resolves (keystores are read with their passwords when the
  environment provides them; otherwise a warning says what could not be checked);
* alias records with literal secrets (warnings).

Every problem is a ``FlowrunError`` with file, JSON pointer and line; warnings are the same
errors, marked as warnings. What could not be checked offline (a remote WSDL) is an INFO record
with a ``code`` on the ``flowrun`` logger, which ``flowrun validate`` prints as a note.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from flowrun._errors import (
    DataPillError,
    DefinitionError,
    FlowrunError,
    SecretUnavailableError,
    SoapOperationError,
    SoapPortError,
    SoapVersionError,
    UnknownReferenceError,
    WsdlNotFetchedError,
)
from flowrun._load._schema import did_you_mean
from flowrun._models._flow import Flow, FlowStep, StepDefinition
from flowrun._models._record import ValueRecord
from flowrun._models._steps import RestStep, SoapStep, Step

Severity = Literal["error", "warning"]
_LOG = logging.getLogger("flowrun")
_FLOW_ROOTS = ("inputs", "steps", "env")
_DEFINITION_ROOTS = ("inputs", "env")
_RESULT_ROOTS = ("status", "headers", "body", "outputs", "soap_headers", "fault", "duration_ms", "items")
_ITEM_ROOTS = ("item", "index")
# What an assertion of a for_each step reads about the whole step (checked once, after every item).
_EACH_ROOTS = ("failed_items",)


@attrs.frozen(eq=False, repr=False)
class Problem(ValueRecord):
    severity: Severity
    error: FlowrunError
    # A secret that is not available: what it kept from being checked ("alias 'x'") and why.
    unchecked: tuple[str, str] | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


@attrs.frozen(eq=False, repr=False)
class _Scope(ValueRecord):
    """What the pills of one place may read."""

    roots: tuple[str, ...]
    inputs: Mapping[str, Any]
    env: Mapping[str, Any]
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    current: str | None = None
    definition: str | None = None
    refused: frozenset[str] = frozenset()  # steps already reported as broken: reading them is no new error


class _Lines:
    """Line numbers for pointers, read once per file (problems only: not on the run path)."""

    def __init__(self) -> None:
        self._lines: dict[Path, Any] = {}

    def place(self, error: FlowrunError, file: Path | None) -> FlowrunError:
        if error.file is None and file is not None:
            error.file = str(file)
        if error.line is None and error.file is not None and error.pointer:
            error.line = self.line(Path(error.file), error.pointer)
        return error

    def line(self, file: Path, pointer: str) -> int | None:
        if file not in self._lines:
            from flowrun._load._json import read_json_file

            try:
                self._lines[file] = read_json_file(file)
            except FlowrunError:
                self._lines[file] = None
        document = self._lines[file]
        return document.line(pointer) if document is not None else None


def check_flow(flow: Flow, *, refused: Iterable[str] = ()) -> list[Problem]:
    """Pills, conditions, assertions and arguments of every step, and the flow's outputs.
    ``refused``: ids of steps the loader reported and left out; pills reading them are not reported again."""
    refused_ids = frozenset(refused)
    lines = _Lines()
    problems: list[Problem] = []
    env = flow.declared_env
    ids = [entry.id for entry in flow.steps]
    checked_definitions: set[str] = set()

    def report(error: FlowrunError, file: Path | None) -> None:
        placed = lines.place(error, file)
        if isinstance(placed, WsdlNotFetchedError):
            # Not a problem: what could not be checked offline, said as a note (``validate`` shows them).
            _LOG.info("%s; %s", placed, placed.hint, extra={"code": placed.code})
            return
        problems.append(Problem("error", placed))

    for index, entry in enumerate(flow.steps):
        scope = _Scope(_FLOW_ROOTS, flow.inputs, env, before=tuple(ids[:index]), after=tuple(ids[index + 1:]),
                       current=entry.id, refused=refused_ids)
        base = entry.origin.pointer
        file = flow.origin.file if entry.uses is not None else entry.step.origin.file
        if entry.when is not None:
            for error in _expression_problems(entry.when, scope, f"{base}/when", entry.id, strip_pill=True):
                report(error, file)
        if entry.step.for_each is not None:
            for error in _for_each_problems(entry.step.for_each, scope, f"{base}/for_each", entry.id):
                report(error, flow.origin.file)
            scope = attrs.evolve(scope, roots=(*scope.roots, *_ITEM_ROOTS))
        if entry.uses is None:
            for error in _step_problems(entry.step, scope, base, entry.id):
                report(error, file)
            continue
        definition = entry.uses
        for error in _with_problems(entry, definition, scope):
            report(error, flow.origin.file)
        entry_scope = scope
        if entry.step.for_each is not None:
            entry_scope = attrs.evolve(scope, roots=(*scope.roots, *_EACH_ROOTS))
        for error in _assertion_problems(entry.assertions, entry_scope, f"{base}/assert", entry.id):
            report(error, flow.origin.file)
        key = str(definition.origin.file)
        if key not in checked_definitions:
            checked_definitions.add(key)
            own = _Scope(_DEFINITION_ROOTS, definition.inputs, env, definition=definition.name)
            for error in _step_problems(definition.step, own, "", entry.id):
                report(error, definition.origin.file)
    outputs_scope = _Scope(_FLOW_ROOTS, flow.inputs, env, before=tuple(ids), refused=refused_ids)
    for error in _pill_problems(flow.outputs, outputs_scope, "/outputs", None):
        report(error, flow.origin.file)
    return problems


def _for_each_problems(text: str, scope: _Scope, pointer: str, step_id: str) -> Iterator[FlowrunError]:
    from flowrun._eval._template import find_pills

    try:
        pills = find_pills(text, pointer)
    except DataPillError:
        pills = [(pointer, text)]  # _pill_problems reports it
    stripped = text.strip()
    if len(pills) != 1 or not (stripped.startswith("{{") and stripped.endswith("}}")):
        yield DataPillError(f"for_each must be one data pill that gives an array; got {text!r}", pointer=pointer,
                            step=step_id, hint='e.g. "for_each": "{{ steps.list.outputs.ids }}"')
        return
    yield from _pill_problems(text, scope, pointer, step_id)


def _paginate_problems(step: Step, base: str, step_id: str) -> Iterator[FlowrunError]:
    from flowrun._eval._capture import check_capture

    paginate = getattr(step, "paginate", None)
    if paginate is None:
        return
    for name in ("items", "next"):
        expression = getattr(paginate, name)
        if expression is None:
            continue
        try:
            check_capture(expression, kind="json", pointer=f"{base}/paginate/{name}")
        except FlowrunError as error:
            error.step = error.step or step_id
            yield error


def _step_problems(step: Step, scope: _Scope, base: str, step_id: str) -> Iterator[FlowrunError]:
    yield from _paginate_problems(step, base, step_id)
    for pointer, value in _templated_fields(step, base):
        yield from _pill_problems(value, scope, pointer, step_id)
    yield from _path_problems(step, base, step_id)
    each = _EACH_ROOTS if step.for_each is not None else ()
    result_scope = attrs.evolve(scope, roots=(*scope.roots, *_RESULT_ROOTS, *each))
    yield from _assertion_problems(step.assertions, result_scope, f"{base}/assert", step_id)
    yield from _output_problems(step, base, step_id)
    if isinstance(step, SoapStep) and step.wsdl is not None:
        yield from _soap_problems(step, base, step_id)


_PILL = re.compile(r"\{\{.*?\}\}", re.DOTALL)


def _path_problems(step: Step, base: str, step_id: str) -> Iterator[FlowrunError]:
    """A ``..`` written in the path that climbs above the base path (pill values, always one
    segment, cannot; whether their value climbs is checked when the step runs)."""
    path = getattr(step, "path", None)
    if not isinstance(path, str) or ("." not in path and "%" not in path):
        return
    from flowrun._transport._request import check_inside_base

    try:
        check_inside_base(_PILL.sub("x", path).partition("?")[0], step=step_id, pointer=f"{base}/path")
    except FlowrunError as error:
        yield error


def _templated_fields(step: Step, base: str) -> Iterator[tuple[str, Any]]:
    """The values an executor renders, with the JSON pointer they were written at."""
    if isinstance(step, RestStep):
        yield f"{base}/path", step.path
        yield f"{base}/query", _pairs_value(step.query)
        yield f"{base}/headers", _pairs_value(step.headers)
        if step.body is not None and step.body.kind != "file":
            key = step.body.kind
            yield f"{base}/body/{key}", step.body.value
    elif isinstance(step, SoapStep):
        for name in ("wsdl", "operation", "soap_action", "envelope", "path"):
            value = getattr(step, name)
            if value is not None:
                yield f"{base}/{name}", value
        yield f"{base}/args", dict(step.args)
        yield f"{base}/soap_headers", dict(step.soap_headers)
        yield f"{base}/headers", _pairs_value(step.headers)


def _pairs_value(pairs: Sequence[tuple[str, Any]]) -> Any:
    """Pairs as they were most likely written: an object when names are unique (pointers then
    name the header or parameter), else the list of values."""
    names = [name for name, _ in pairs]
    if len(set(names)) == len(names):
        return dict(pairs)
    return [value for _, value in pairs]


def _pill_problems(value: Any, scope: _Scope, pointer: str, step_id: str | None) -> Iterator[FlowrunError]:
    from flowrun._eval._template import find_pills

    try:
        pills = find_pills(value, pointer)
    except DataPillError as error:
        error.step = error.step or step_id
        yield error
        return
    for where, expression in pills:
        yield from _expression_problems(expression, scope, where, step_id)


def _expression_problems(expression: str, scope: _Scope, pointer: str, step_id: str | None, *,
                         strip_pill: bool = False) -> Iterator[FlowrunError]:
    from flowrun._eval._template import pill_roots

    text = expression.strip()
    if strip_pill and text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1:
        text = text[2:-2].strip()
    try:
        roots = pill_roots(text)
    except DataPillError as error:
        error.pointer = pointer
        error.step = step_id
        yield error
        return
    for root in sorted(roots):
        name, _, key = root.partition(".")
        problem = _root_problem(name, key, scope, text)
        if problem is not None:
            message, hint = problem
            yield DataPillError(f"{{{{ {text} }}}}: {message}", hint=hint, pointer=pointer, step=step_id)


def _root_problem(name: str, key: str, scope: _Scope, expression: str) -> tuple[str, str] | None:
    if name not in scope.roots:
        if key:
            return None  # reported once, for the bare name
        if scope.definition is not None and name == "steps":
            return (f"step definition '{scope.definition}' cannot read other steps",
                    "a reusable step reads only its inputs and env: pass values with 'with' in the flow")
        return (f"'{name}' is not something a data pill can read{did_you_mean(name, scope.roots)}",
                f"data pills here read {', '.join(scope.roots)}")
    if not key:
        return None
    if name == "inputs" and key not in scope.inputs:
        known = sorted(scope.inputs)
        owner = f"step definition '{scope.definition}'" if scope.definition else "the flow"
        return (f"input '{key}' is not declared by {owner}{did_you_mean(key, known)}",
                f"declared inputs: {', '.join(known) if known else 'none'}; declare it in 'inputs'")
    if name == "env" and key not in scope.env:
        known = sorted(scope.env)
        return (f"environment variable '{key}' is not declared{did_you_mean(key, known)}",
                f"declare it in the flow's 'env' (declared: {', '.join(known) if known else 'none'}); "
                "undeclared variables are invisible to data pills")
    if name == "steps":
        if key in scope.before or key in scope.refused:
            return None
        if key == scope.current:
            return (f"step '{key}' reads its own result",
                    "a step's request can read only earlier steps; its assertions read status, body and outputs "
                    "directly")
        if key in scope.after:
            return (f"step '{key}' runs after this point",
                    "a step can read only the steps before it: move this step after it")
        known = [*scope.before, *scope.after]
        return (f"there is no step '{key}'{did_you_mean(key, known)}",
                f"steps before this point: {', '.join(scope.before) if scope.before else 'none'}")
    return None


def _assertion_problems(assertions: Sequence[Mapping[str, Any]], scope: _Scope, base: str,
                        step_id: str) -> Iterator[FlowrunError]:
    from flowrun._eval._assertions import OPERATORS, validate_assertion_spec

    result_scope = attrs.evolve(scope, roots=tuple(dict.fromkeys((*scope.roots, *_RESULT_ROOTS))))
    for index, spec in enumerate(assertions):
        pointer = f"{base}/{index}"
        try:
            validate_assertion_spec(spec, pointer)
        except FlowrunError as error:
            error.step = error.step or step_id
            yield error
            continue
        yield from _expression_problems(str(spec["that"]), result_scope, f"{pointer}/that", step_id)
        for op in OPERATORS:
            if op in spec:
                yield from _pill_problems(spec[op], scope, f"{pointer}/{op}", step_id)


def _output_problems(step: Step, base: str, step_id: str) -> Iterator[FlowrunError]:
    from flowrun._eval._capture import check_capture

    spec = step.response
    for name, expression in spec.outputs.items():
        xpath = expression.startswith("xpath:")
        try:
            check_capture(expression.removeprefix("xpath:") if xpath else expression,
                          kind="xml" if xpath else "json", namespaces=spec.namespaces,
                          pointer=f"{base}/response/outputs/{name}")
        except FlowrunError as error:
            error.step = error.step or step_id
            yield error


def _soap_problems(step: SoapStep, base: str, step_id: str) -> Iterator[FlowrunError]:
    """The step against its WSDL, offline. zeep loads here, and only for flows with SOAP steps."""
    from flowrun._soap import wsdl_source
    from flowrun._transport import _wsdl as wsdl

    assert step.wsdl is not None
    if "{{" in step.wsdl:
        return  # known only when the flow runs
    try:
        source = wsdl_source(step, step.wsdl)
        if not source.local:
            raise WsdlNotFetchedError(f"the WSDL {step.wsdl} is remote: validate does not fetch it, so the "
                                      "operation and args are checked when the step runs",
                                      hint="keep a local copy of the WSDL (and its schemas) to check steps offline")
        document = wsdl.load_offline(source)
    except FlowrunError as error:
        yield _at(error, f"{base}/wsdl", step_id)
        return
    try:
        chosen = wsdl.choose_binding(document, service=step.service, port=step.port,
                                     soap_version=step.soap_version, wsdl=step.wsdl)
    except FlowrunError as error:
        field = _binding_field(error)
        yield _at(error, f"{base}/{field}" if field else base, step_id)
        return
    if step.operation is None:
        return
    operations = wsdl.operation_names(chosen)
    if step.operation not in operations:
        yield SoapOperationError(
            f"the WSDL {step.wsdl} (binding {chosen.qname}) has no operation "
            f"'{step.operation}'{did_you_mean(step.operation, operations)}",
            hint=f"its operations: {', '.join(operations)}", pointer=f"{base}/operation", step=step_id)
        return
    try:
        parameters = wsdl.operation_parameters(chosen, step.operation, wsdl=step.wsdl)
        headers = wsdl.operation_headers(chosen, step.operation, wsdl=step.wsdl)
    except FlowrunError as error:
        yield _at(error, f"{base}/operation", step_id)
        return
    yield from wsdl.argument_problems(step.args, parameters, f"{base}/args", step.operation, step_id)
    if step.soap_headers and not any(name.startswith("{") for name in step.soap_headers):
        # Plain names are header parts the WSDL declares ({namespace}Name keys are built as given).
        yield from wsdl.argument_problems(step.soap_headers, headers, f"{base}/soap_headers", step.operation, step_id,
                                          field="soap_headers", noun="SOAP header")


def _binding_field(error: FlowrunError) -> str | None:
    """The step field a ``choose_binding`` error is about; None: the step as a whole (several ports fit)."""
    if isinstance(error, SoapVersionError):
        return "soap_version"
    if isinstance(error, SoapPortError):
        return error.field
    return None


def _at(error: FlowrunError, pointer: str, step_id: str) -> FlowrunError:
    error.pointer = error.pointer or pointer
    error.step = error.step or step_id
    return error


def _with_problems(entry: FlowStep, definition: StepDefinition, scope: _Scope) -> Iterator[FlowrunError]:
    base = f"{entry.origin.pointer}/with"
    for name in entry.arguments:
        if name not in definition.inputs:
            known = sorted(definition.inputs)
            yield DefinitionError(
                f"step definition '{definition.name}' has no input '{name}'{did_you_mean(name, known)}",
                hint=f"its inputs: {', '.join(known) if known else 'none'}", pointer=f"{base}/{name}", step=entry.id)
    for name, spec in definition.inputs.items():
        if spec.is_required and name not in entry.arguments:
            yield DefinitionError(f"step definition '{definition.name}' needs input '{name}'",
                                  hint=f"add it to 'with'{': ' + spec.description if spec.description else ''}",
                                  pointer=base if entry.arguments else entry.origin.pointer, step=entry.id)
    yield from _pill_problems(dict(entry.arguments), scope, base, entry.id)


# --- references ---------------------------------------------------------------------------------


def check_references(flows: Iterable[Flow], registry: Any, env: str | None = None) -> list[Problem]:
    """Aliases exist and resolve (key material read offline); missing secrets are warnings, and so
    is a protocol profile that turns certificate checks off (``insecure_skip_verify``)."""
    problems: list[Problem] = []
    lines = _Lines()
    registry.on_insecure = lambda use: problems.append(Problem("warning", DefinitionError(
        use.message, hint=use.hint, **use.profile.origin.location())))
    resolved: dict[tuple[str, str | None], list[Problem]] = {}
    for flow in flows:
        for entry in flow.steps:
            name = entry.step.alias
            if name is None:
                continue
            origin = entry.step.origin
            pointer = f"{origin.pointer}/alias"
            try:
                alias = registry.alias(name)
            except UnknownReferenceError as error:
                error.pointer, error.step = pointer, entry.id
                problems.append(Problem("error", lines.place(error, origin.file)))
                continue
            environments = [env] if env is not None else (list(alias.environments) or [None])
            for chosen in environments:
                key = (name, chosen)
                if key not in resolved:
                    resolved[key] = _resolve_problem(registry, name, chosen)
                problems.extend(resolved[key])
    # The same alias problem is reported once, not once per step that uses the alias.
    unique: list[Problem] = []
    seen: set[str] = set()
    for problem in problems:
        text = f"{problem.severity}|{problem.error}"
        if text not in seen:
            seen.add(text)
            unique.append(problem)
    return unique


def _resolve_problem(registry: Any, name: str, env: str | None) -> list[Problem]:
    problems: list[Problem] = []
    try:
        _, connection, _ = registry.connection(name, env)
    except FlowrunError as error:
        return [Problem("error", error)]
    try:
        registry.resolve(name, env)
    except SecretUnavailableError as error:
        problems.append(_unchecked(error, f"alias '{name}'", fully=True))
    except FlowrunError as error:  # keystores, trust certs, environments
        problems.append(Problem("error", error))
        return problems
    credential = registry.records.credentials.get(connection.credential) if connection.credential else None
    for secret in credential.secrets() if credential is not None else ():
        try:
            secret.reveal()
        except SecretUnavailableError as error:
            problems.append(_unchecked(error, f"alias '{name}'", fully=True))
    return problems


def _unchecked(error: SecretUnavailableError, what: str, *, fully: bool) -> Problem:
    """The warning of a secret that is not available (an unset variable): what was not checked."""
    reason = error.message
    error.message = f"{what} not {'fully ' if fully else ''}checked: {reason}"
    error.hint = ("set it to let `flowrun validate` check everything the alias needs; a run needs it too" if fully
                  else "set it to let `flowrun validate` open it; a run needs it too")
    return Problem("warning", error, unchecked=(what, reason))


def _merge_unchecked(problems: list[Problem]) -> list[Problem]:
    """One warning per secret that is not available, naming everything it kept from being checked
    (a keystore password read by every alias on its profile is one unset variable, not one per alias)."""
    merged: list[Problem] = []
    # By where the secret is and why it is missing: the first warning, and what each one names.
    groups: dict[tuple[str | None, int | None, str | None, str], tuple[Problem, list[str]]] = {}
    for problem in problems:
        if problem.unchecked is None:
            merged.append(problem)
            continue
        what, reason = problem.unchecked
        key = (problem.error.file, problem.error.line, problem.error.pointer, reason)
        if key in groups:
            groups[key][1].append(what)
        else:
            groups[key] = (problem, [what])
            merged.append(problem)
    for (*_, reason), (first, names) in groups.items():
        if len(names) > 1:
            first.error.message = f"{reason}: not checked: {', '.join(dict.fromkeys(names))}"
            first.error.hint = "set it to let `flowrun validate` check them; a run needs it too"
    return merged


def check_literal_secrets(registry: Any) -> list[Problem]:
    """Alias records that hold a secret as a literal string: it would be shared with the files."""
    problems: list[Problem] = []
    records = registry.records
    holders: list[tuple[str, str, Any]] = []
    for keystore in records.keystores.values():
        holders.extend(("keystore", keystore.name, s) for s in (keystore.password, keystore.key_password) if s)
    for credential in records.credentials.values():
        holders.extend(("credential", credential.name, s) for s in credential.secrets())
    for alias in records.aliases.values():
        holders.extend(("the proxy of alias", alias.name, c.proxy.password) for c in alias.connections.values()
                       if c.proxy is not None and c.proxy.password is not None)
    for kind, name, secret in holders:
        if secret.is_literal:
            location = secret.origin.location()
            problems.append(Problem("warning", DefinitionError(
                f"{kind} '{name}' holds a literal secret",
                hint='use {"env": "NAME"} or {"file": "path"}: alias files are shared, secrets are not',
                **location)))
    return problems


def check_alias_records(registry: Any, env: str | None = None) -> list[Problem]:
    """Without flows (``flowrun validate --aliases DIR``): every alias resolves, and every keystore
    and trust store cert opens, whether an alias uses it or not. A secret that is not available
    (an unset variable) is a warning that says what was not checked."""
    problems: list[Problem] = []
    registry.on_insecure = lambda use: problems.append(Problem("warning", DefinitionError(
        use.message, hint=use.hint, **use.profile.origin.location())))
    for name in registry.alias_names():
        problems.extend(alias_problems(registry, name, env))
    records = registry.records
    opened = [("keystore", name, registry.identity) for name in records.keystores]
    opened += [("trust_store_cert", name, registry.trust_store_cert) for name in records.trust_store_certs]
    for kind, name, open_record in opened:
        try:
            open_record(name)
        except SecretUnavailableError as error:
            problems.append(_unchecked(error, f"{kind.replace('_', ' ')} '{name}'", fully=False))
        except FlowrunError as error:
            problems.append(Problem("error", error))
    return _merge_unchecked(problems)


def alias_problems(registry: Any, name: str, env: str | None = None) -> list[Problem]:
    """The problems of resolving one alias: for ``env``, else for each of its environments."""
    try:
        alias = registry.alias(name)
    except FlowrunError as error:
        return [Problem("error", error)]
    problems: list[Problem] = []
    for chosen in [env] if env is not None else (list(alias.environments) or [None]):
        problems.extend(_resolve_problem(registry, name, chosen))
    return problems
