"""Plain field paths (``inputs.account``) are read without JMESPath, exactly as JMESPath reads them
(flowrun/_eval/_template.py)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import jmespath
from hypothesis import given, settings
from hypothesis import strategies as st

from flowrun._eval._template import compile_expression

_NAMES = st.sampled_from(["a", "b", "status", "_x", "A1", "true", "null"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_NAMES, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_NAMES, min_size=1, max_size=4), _JSON)
def test_a_field_path_reads_what_jmespath_reads(names: list[str], data: Any) -> None:
    text = ".".join(names)
    compiled = compile_expression(text)
    assert compiled.search(data) == jmespath.search(text, data)
    assert compiled.path == tuple(names)


def test_a_field_path_parses_to_jmespaths_tree_when_asked() -> None:
    assert compile_expression("inputs.account").parsed.parsed == jmespath.compile("inputs.account").parsed


def test_a_run_of_field_paths_does_not_import_jmespath() -> None:
    code = ("import sys; from flowrun._eval._template import compile_expression as c; "
            "e = c('steps.balance.outputs'); e.search({'steps': {}}); print('jmespath' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "False"
