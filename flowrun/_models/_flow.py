"""Flow records: inputs, declared environment variables, steps (inline or ``uses``), outputs.

A flow can be loaded from JSON (``flowrun._load._flows``) or built in Python::

    Flow(name="balance_check",
         inputs={"account": FlowInput(type="string", default="42")},
         steps=[RestStep(id="balance", alias="bank", path="/accounts/{{ inputs.account }}")],
         outputs={"balance": "{{ steps.balance.outputs.balance }}"})

Bare ``RestStep``/``SoapStep`` objects are wrapped in ``FlowStep`` on construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

from flowrun._errors import SchemaError
from flowrun._models._origin import NOWHERE, Origin
from flowrun._models._record import ValueRecord
from flowrun._models._steps import RestStep, SoapStep, Step

InputType = Literal["string", "number", "integer", "boolean", "object", "array"]
INPUT_TYPES: tuple[str, ...] = ("string", "number", "integer", "boolean", "object", "array")
OnError = Literal["stop", "continue"]


def matches_type(value: Any, type_name: str) -> bool:
    """Whether a Python value (as JSON gives it) is of a declared input type."""
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if type_name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name == "object":
        return isinstance(value, Mapping)
    if type_name == "array":
        return isinstance(value, list | tuple)
    return False


class _NoDefault:
    """Marks an input without a default (``None`` is a legitimate default: JSON null)."""

    _instance: _NoDefault | None = None

    def __new__(cls) -> _NoDefault:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_DEFAULT"

    def __bool__(self) -> bool:
        return False


NO_DEFAULT: Any = _NoDefault()


@attrs.frozen(kw_only=True, eq=False, repr=False)
class FlowInput(ValueRecord):
    """A declared input. Without a default an input is required unless ``required`` says otherwise;
    an optional input without a default is null."""

    type: InputType = "string"
    default: Any = NO_DEFAULT
    required: bool | None = None
    description: str = ""
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.type not in INPUT_TYPES:
            raise SchemaError(f"input type must be one of {', '.join(INPUT_TYPES)}; got {self.type!r}",
                              **self.origin.location())
        if self.required and self.has_default:
            raise SchemaError("an input cannot be both required and have a default",
                              hint="drop \"required\": true, or drop the default", **self.origin.location())
        if self.has_default and self.default is not None and not matches_type(self.default, self.type):
            raise SchemaError(f"the default {self.default!r} is not of the input's type {self.type}",
                              **self.origin.location())

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT

    @property
    def is_required(self) -> bool:
        return (not self.has_default) if self.required is None else self.required


@attrs.frozen(kw_only=True, eq=False, repr=False)
class FlowEnvVar(ValueRecord):
    """An environment variable the flow reads as ``env.NAME``. Undeclared variables are invisible."""

    default: str | None = None
    required: bool = True
    description: str = ""
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)


def _assertion_tuple(value: Iterable[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    # Not ``converter=tuple``: attrs reads a converter's signature, and a builtin's is parsed from
    # its text signature with the tokenize module's regexes (~1.5 ms of every start-up).
    return tuple(value)


def _env_vars(value: Mapping[str, FlowEnvVar] | Iterable[str] | None) -> Mapping[str, FlowEnvVar]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    return {name: FlowEnvVar() for name in value}


def _inputs(value: Mapping[str, FlowInput] | None) -> Mapping[str, FlowInput]:
    return dict(value or {})


@attrs.frozen(kw_only=True, eq=False, repr=False)
class StepDefinition(ValueRecord):
    """A reusable step from the steps search path: a step with its own declared inputs.

    Its data pills read ``inputs.*`` (the ``with`` values of the flow entry that uses it) and
    ``env.*``; it never sees the flow's other steps.
    """

    name: str
    step: Step
    inputs: Mapping[str, FlowInput] = attrs.field(factory=dict, converter=_inputs)
    env: Mapping[str, FlowEnvVar] = attrs.field(factory=dict, converter=_env_vars)
    description: str = ""
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)


@attrs.frozen(kw_only=True, eq=False, repr=False)
class FlowStep(ValueRecord):
    """One entry of a flow's ``steps``.

    ``step`` is what runs: an inline step, or the used definition's step with the entry's id,
    ``when`` and ``on_error``. ``assertions`` are the entry's own ``assert`` of a ``uses`` entry:
    their data pills read the flow's context, not the definition's.
    """

    step: Step
    uses: StepDefinition | None = None
    arguments: Mapping[str, Any] = attrs.field(factory=dict)
    assertions: tuple[Mapping[str, Any], ...] = attrs.field(default=(), converter=_assertion_tuple)
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)

    @property
    def id(self) -> str:
        return self.step.id

    @property
    def kind(self) -> str:
        return self.step.kind

    @property
    def when(self) -> str | None:
        return self.step.when

    @property
    def on_error(self) -> OnError:
        return self.step.on_error


def _flow_steps(value: Iterable[FlowStep | Step]) -> tuple[FlowStep, ...]:
    result: list[FlowStep] = []
    for item in value:
        if isinstance(item, FlowStep):
            result.append(item)
        elif isinstance(item, RestStep | SoapStep):
            result.append(FlowStep(step=item, origin=item.origin))
        else:
            raise TypeError(f"a flow step is a RestStep, SoapStep or FlowStep, not {type(item).__name__}")
    return tuple(result)


@attrs.frozen(kw_only=True, eq=False, repr=False)
class Flow(ValueRecord):
    """Ordered steps with inputs, data pills and outputs."""

    name: str
    steps: tuple[FlowStep, ...] = attrs.field(converter=_flow_steps)
    inputs: Mapping[str, FlowInput] = attrs.field(factory=dict, converter=_inputs)
    env: Mapping[str, FlowEnvVar] = attrs.field(factory=dict, converter=_env_vars)
    outputs: Mapping[str, Any] = attrs.field(factory=dict)
    description: str = ""
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        seen: dict[str, FlowStep] = {}
        for entry in self.steps:
            first = seen.get(entry.id)
            if first is not None:
                where = f" (first at line {first.origin.line})" if first.origin.line is not None else ""
                raise SchemaError(f"step id '{entry.id}' is used twice{where}",
                                  hint="step ids name the step in data pills (steps.<id>): make them unique",
                                  **entry.origin.location())
            seen[entry.id] = entry

    def step(self, step_id: str) -> FlowStep:
        for entry in self.steps:
            if entry.id == step_id:
                return entry
        raise KeyError(step_id)

    @property
    def declared_env(self) -> Mapping[str, FlowEnvVar]:
        """The flow's env variables and those its used step definitions declare."""
        merged = dict(self.env)
        for entry in self.steps:
            if entry.uses is not None:
                for name, var in entry.uses.env.items():
                    merged.setdefault(name, var)
        return merged

    @property
    def alias_names(self) -> tuple[str, ...]:
        names = {entry.step.alias for entry in self.steps if entry.step.alias is not None}
        return tuple(sorted(names))
