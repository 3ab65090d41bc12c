"""The public facade: every public name resolves, and every public class is listed."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import flowrun
from flowrun import _errors


def test_every_name_in_all_resolves() -> None:
    for name in flowrun.__all__:
        assert getattr(flowrun, name) is not None, name


def test_every_error_class_is_public() -> None:
    for name, value in vars(_errors).items():
        if inspect.isclass(value) and issubclass(value, _errors.FlowrunError):
            assert name in flowrun.__all__, f"{name} missing from flowrun.__all__"


def test_lazy_names_are_in_all() -> None:
    for name in flowrun._LAZY:
        assert name in flowrun.__all__
        module = importlib.import_module(flowrun._LAZY[name])
        assert getattr(flowrun, name) is getattr(module, name)


def test_error_codes_are_unique() -> None:
    codes = [cls.code for cls in vars(_errors).values()
             if inspect.isclass(cls) and issubclass(cls, _errors.FlowrunError)]
    assert len(codes) == len(set(codes))


def test_import_does_not_load_network_or_soap_libraries() -> None:
    code = "import sys, flowrun; print(','.join(m for m in ('httpx', 'zeep', 'jsonschema') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
