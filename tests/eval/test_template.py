"""Data pills: rendering, type preservation, missing values, escaping, static checks."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowrun._errors import DataPillError, FlowrunError
from flowrun._eval import (
    check_pill,
    check_pills,
    find_pills,
    format_path,
    pill_roots,
    render,
    value_to_text,
)


@pytest.fixture
def context() -> dict[str, Any]:
    return {
        "inputs": {
            "account": "42",
            "count": 7,
            "rate": 0.25,
            "active": True,
            "closed": False,
            "note": None,
            "items": [{"sku": "A1", "price": 3}, {"sku": "B2", "price": 1}],
            "empty": [],
            "name": "Zoë €",
            "prénom": "Élodie",
            "a-b": "dash",
        },
        "steps": {
            "balance": {
                "status": 200,
                "headers": {"content-type": "application/json"},
                "body": {"balance": 120.5, "currency": "EUR", "history": []},
                "outputs": {"balance": 120.5, "currency": "EUR"},
            },
            "empty_body": {"status": 204, "headers": {}, "body": None, "outputs": {}},
        },
        "env": {"REGION": "eu-west"},
    }


# --- rendering ---------------------------------------------------------------------------


def test_string_without_pill_is_returned_as_is(context: dict[str, Any]) -> None:
    text = "no pills here { } }} {"
    assert render(text, context) is text


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.count }}", 7),
        ("{{ inputs.rate }}", 0.25),
        ("{{ inputs.active }}", True),
        ("{{ inputs.closed }}", False),
        ("{{ inputs.note }}", None),
        ("{{ inputs.items }}", [{"sku": "A1", "price": 3}, {"sku": "B2", "price": 1}]),
        ("{{ steps.balance.outputs }}", {"balance": 120.5, "currency": "EUR"}),
        ("{{ inputs.account }}", "42"),
        ("{{inputs.count}}", 7),
    ],
)
def test_a_lone_pill_keeps_the_json_type(context: dict[str, Any], template: str, expected: Any) -> None:
    result = render(template, context)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("/accounts/{{ inputs.account }}", "/accounts/42"),
        ("n={{ inputs.count }}", "n=7"),
        ("r={{ inputs.rate }}", "r=0.25"),
        ("{{ inputs.active }}/{{ inputs.closed }}", "true/false"),
        ("[{{ inputs.note }}]", "[]"),
        ("items={{ inputs.empty }}", "items=[]"),
        ("o={{ steps.balance.outputs }}", 'o={"balance":120.5,"currency":"EUR"}'),
        ("hi {{ inputs.name }}!", "hi Zoë €!"),
        (" {{ inputs.count }}", " 7"),
    ],
)
def test_pills_in_a_longer_string_become_text(context: dict[str, Any], template: str, expected: str) -> None:
    assert render(template, context) == expected


def test_nested_structures_render_values_but_not_keys(context: dict[str, Any]) -> None:
    value = {
        "path": "/accounts/{{ inputs.account }}",
        "{{ inputs.account }}": "key stays",
        "query": {"limit": "{{ inputs.count }}", "flags": ["{{ inputs.active }}", 3, None, ("{{ env.REGION }}",)]},
        "number": 5,
        "nothing": None,
    }
    assert render(value, context) == {
        "path": "/accounts/42",
        "{{ inputs.account }}": "key stays",
        "query": {"limit": 7, "flags": [True, 3, None, ["eu-west"]]},
        "number": 5,
        "nothing": None,
    }


def test_unicode_names_need_quoted_identifiers(context: dict[str, Any]) -> None:
    assert render('{{ inputs."prénom" }} {{ inputs."a-b" }}', context) == "Élodie dash"


def test_jmespath_functions_work(context: dict[str, Any]) -> None:
    assert render("{{ length(inputs.items) }}", context) == 2
    assert render("{{ contains(inputs.items[*].sku, 'B2') }}", context) is True
    assert render("{{ join(',', inputs.items[*].sku) }}", context) == "A1,B2"
    assert render("{{ sort_by(inputs.items, &price)[0].sku }}", context) == "B2"
    assert render("{{ inputs.items[?price > `2`].sku | [0] }}", context) == "A1"
    assert render("{{ to_string(inputs.count) }}", context) == "7"


def test_braces_inside_a_pill_do_not_close_it(context: dict[str, Any]) -> None:
    assert render("{{ {id: inputs.account, more: {n: inputs.count}} }}", context) == {
        "id": "42", "more": {"n": 7},
    }
    assert render("{{ {n: inputs.count}}}", context) == {"n": 7}
    assert render("{{ 'a}}b' }}", context) == "a}}b"


def test_several_pills_and_literals(context: dict[str, Any]) -> None:
    template = "{{ inputs.account }}-{{ steps.balance.outputs.currency }}-{{ env.REGION }}"
    assert render(template, context) == "42-EUR-eu-west"


# --- escaping ------------------------------------------------------------------------------


def test_backslash_writes_a_literal_opening(context: dict[str, Any]) -> None:
    assert render("\\{{ not a pill }}", context) == "{{ not a pill }}"
    assert render("\\{{ literal }} and {{ inputs.count }}", context) == "{{ literal }} and 7"
    assert render("C:\\dir\\{{ inputs.account }}", context) == "C:\\dir{{ inputs.account }}"


def test_backslash_elsewhere_is_text(context: dict[str, Any]) -> None:
    assert render("a\\b {{ inputs.account }}", context) == "a\\b 42"


def test_a_backslash_before_a_pill_through_a_json_literal(context: dict[str, Any]) -> None:
    assert render('{{ `"\\\\"` }}{{ inputs.account }}', context) == "\\42"


# --- null and missing ---------------------------------------------------------------------


def test_null_is_not_missing(context: dict[str, Any]) -> None:
    assert render("{{ inputs.note }}", context) is None
    assert render("{{ steps.empty_body.body }}", context) is None


def test_missing_key_names_the_deepest_part_and_suggests(context: dict[str, Any]) -> None:
    with pytest.raises(DataPillError) as caught:
        render("{{ steps.balance.outputs.balanse }}", context, step="pay", pointer="/steps/1/body/amount")
    err = caught.value
    assert err.message == (
        "{{ steps.balance.outputs.balanse }}: steps.balance.outputs has no 'balanse' "
        "(did you mean 'balance'? available: balance, currency)"
    )
    assert err.pointer == "/steps/1/body/amount"
    assert err.step == "pay"
    assert "|| ''" in err.hint
    assert str(err).startswith("at /steps/1/body/amount step 'pay': ")


def test_missing_key_suggests_a_case_insensitive_match(context: dict[str, Any]) -> None:
    with pytest.raises(DataPillError, match=r"did you mean 'REGION'\?"):
        render("{{ env.region }}", context)


def test_missing_key_without_suggestion_lists_what_is_there(context: dict[str, Any]) -> None:
    with pytest.raises(DataPillError) as caught:
        render("{{ env.ZZZ }}", context)
    assert caught.value.message == "{{ env.ZZZ }}: env has no 'ZZZ' (available: REGION)"


def test_missing_key_in_an_empty_object(context: dict[str, Any]) -> None:
    with pytest.raises(DataPillError, match=r"steps\.empty_body\.outputs has no 'x' \(it is empty\)"):
        render("{{ steps.empty_body.outputs.x }}", context)


def test_unknown_top_level_name(context: dict[str, Any]) -> None:
    with pytest.raises(DataPillError) as caught:
        render("{{ input.account }}", context)
    assert caught.value.message == (
        "{{ input.account }}: no 'input' at the top level (did you mean 'inputs'? available: env, inputs, steps)"
    )


def test_step_that_has_not_run(context: dict[str, Any]) -> None:
    with pytest.raises(DataPillError) as caught:
        render("{{ steps.ledger.outputs.balance }}", context)
    assert caught.value.message == (
        "{{ steps.ledger.outputs.balance }}: step 'ledger' has not run yet (steps that ran: balance, empty_body)"
    )
    with pytest.raises(DataPillError, match=r"step 'balanse' has not run yet \(did you mean 'balance'\?"):
        render("{{ steps.balanse.outputs }}", context)
    with pytest.raises(DataPillError, match=r"no step has run before this point"):
        render("{{ steps.first.status }}", {"inputs": {}, "steps": {}, "env": {}})


def test_null_on_the_way_is_reported(context: dict[str, Any]) -> None:
    with pytest.raises(DataPillError) as caught:
        render("{{ steps.empty_body.body.balance }}", context)
    assert caught.value.message == (
        "{{ steps.empty_body.body.balance }}: steps.empty_body.body is null, so it has no 'balance'"
    )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ inputs.items[5] }}", "inputs.items has 2 items, no [5]"),
        ("{{ inputs.empty[0] }}", "inputs.empty is an empty array, it has no [0]"),
        ("{{ inputs.items.sku }}", "inputs.items is an array, not an object: pick an item "
                                   "(inputs.items[0].sku) or project (inputs.items[*].sku)"),
        ("{{ inputs.account.digits }}", "inputs.account is a string, so it has no 'digits'"),
        ("{{ inputs.count[0] }}", "inputs.count is a number, so it has no [0]"),
        ("{{ steps.balance.outputs[0] }}", "steps.balance.outputs is an object, not an array "
                                           "(keys: balance, currency)"),
        ('{{ inputs."a-b".x }}', 'inputs."a-b" is a string, so it has no \'x\''),
    ],
)
def test_wrong_shapes_are_explained(context: dict[str, Any], template: str, message: str) -> None:
    with pytest.raises(DataPillError) as caught:
        render(template, context)
    assert caught.value.message.endswith(message)


def test_negative_index_reads_from_the_end(context: dict[str, Any]) -> None:
    assert render("{{ inputs.items[-1].sku }}", context) == "B2"
    with pytest.raises(DataPillError, match=r"no \[-3\]"):
        render("{{ inputs.items[-3] }}", context)


def test_default_with_or(context: dict[str, Any]) -> None:
    assert render("{{ inputs.missing || 'fallback' }}", context) == "fallback"
    assert render("{{ inputs.account || 'fallback' }}", context) == "42"
    assert render("{{ steps.ledger.outputs.balance || `0` }}", context) == 0
    # JMESPath "||" also replaces false: documented.
    assert render("{{ inputs.closed || 'x' }}", context) == "x"


def test_non_plain_expressions_follow_jmespath(context: dict[str, Any]) -> None:
    assert render("{{ inputs.items[*].missing }}", context) == []
    assert render("{{ inputs.missing | [0] }}", context) is None


def test_runtime_type_error_in_a_function(context: dict[str, Any]) -> None:
    with pytest.raises(DataPillError) as caught:
        render("{{ length(inputs.count) }}", context, pointer="/x")
    assert caught.value.message == (
        "{{ length(inputs.count) }}: function length() expects string, array or object, got number"
    )


# --- syntax errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ steps..x }}", "{{ steps..x }}: unexpected '.' at character 7"),
        ("{{ inputs.account ~ 1 }}", "{{ inputs.account ~ 1 }}: unknown token ~ at character 16"),
        ("{{ 'abc }}", "{{ 'abc }}: unclosed ' delimiter at character 1"),
        ("{{ inputs.items[ }}", "{{ inputs.items[ }}: the expression is incomplete: something is missing "
                                "after character 13"),
        ("{{ inputs. }}", "{{ inputs. }}: the expression ends too early, after character 7"),
        ("{{ }}", "{{ }}: the expression is empty"),
        ("{{ lenght(inputs.items) }}", "{{ lenght(inputs.items) }}: unknown function lenght() "
                                       "(did you mean length()?)"),
        ("{{ length(inputs.items, inputs.empty) }}", "{{ length(inputs.items, inputs.empty) }}: "
                                                     "function length() takes 1 argument, got 2"),
        ("{{ not_null() }}", "{{ not_null() }}: function not_null() takes at least 1 argument, got 0"),
        ("{{ `[1, 2` }}", "{{ `[1, 2` }}: `[1, 2` at character 1 is not a JSON value "
                          "(write text as 'text' or `\"text\"`)"),
    ],
)
def test_syntax_errors_name_the_expression_and_position(template: str, message: str) -> None:
    with pytest.raises(DataPillError) as caught:
        render({"headers": {"X-Id": ["ok", template]}}, {}, pointer="/steps/0")
    assert caught.value.message == message
    assert caught.value.pointer == "/steps/0/headers/X-Id/1"
    assert "jmespath.org" in caught.value.hint


def test_unclosed_pill() -> None:
    with pytest.raises(DataPillError) as caught:
        render("abc {{ inputs.account", {}, pointer="/path")
    assert caught.value.message == "unclosed '{{' at character 5 of \"abc {{ inputs.account\""
    assert "\\{{" in caught.value.hint
    assert caught.value.pointer == "/path"


def test_pointer_tokens_are_escaped() -> None:
    with pytest.raises(DataPillError) as caught:
        render({"a/b": {"c~d": "{{ x..y }}"}}, {})
    assert caught.value.pointer == "/a~1b/c~0d"


def test_the_same_template_fails_the_same_way_twice() -> None:
    for _ in range(2):
        with pytest.raises(DataPillError, match="unexpected"):
            render("{{ a..b }}", {})


# --- static checks ------------------------------------------------------------------------


def test_find_pills_lists_pointer_and_expression() -> None:
    value = {
        "path": "/a/{{ inputs.account }}/{{steps.balance.outputs.x}}",
        "query": {"k/~": "{{ env.REGION }}"},
        "list": ["plain", "\\{{ not }}", "{{ inputs.n }}"],
        "number": 3,
    }
    assert find_pills(value, "/steps/0") == [
        ("/steps/0/path", "inputs.account"),
        ("/steps/0/path", "steps.balance.outputs.x"),
        ("/steps/0/query/k~1~0", "env.REGION"),
        ("/steps/0/list/2", "inputs.n"),
    ]


def test_find_pills_reports_an_unclosed_pill_with_its_pointer() -> None:
    with pytest.raises(DataPillError) as caught:
        find_pills({"a": ["{{ inputs.x"]})
    assert caught.value.pointer == "/a/0"


def test_check_pill() -> None:
    check_pill("steps.balance.outputs.balance || `0`")
    with pytest.raises(DataPillError) as caught:
        check_pill("steps..balance", pointer="/outputs/x", step="s")
    assert caught.value.message == "{{ steps..balance }}: unexpected '.' at character 7"
    assert caught.value.pointer == "/outputs/x"
    assert caught.value.step == "s"


def test_check_pills_checks_every_expression() -> None:
    check_pills({"a": "{{ inputs.x }}", "b": ["x{{ length(inputs.y) }}"]})
    with pytest.raises(DataPillError) as caught:
        check_pills({"a": "{{ inputs.x }}", "b": ["x{{ lenght(inputs.y) }}"]}, pointer="/steps/2")
    assert caught.value.pointer == "/steps/2/b/0"


@pytest.mark.parametrize(
    ("expression", "roots"),
    [
        ("inputs.account", {"inputs", "inputs.account"}),
        ("inputs", {"inputs"}),
        ("steps.balance.outputs.balance", {"steps", "steps.balance"}),
        ("steps.balance.outputs.x || inputs.y", {"steps", "steps.balance", "inputs", "inputs.y"}),
        ("length(steps.ledger.body.items)", {"steps", "steps.ledger"}),
        ("sort_by(inputs.items, &price)[0].sku", {"inputs", "inputs.items"}),
        ("inputs.items[?price > `1`].sku", {"inputs", "inputs.items"}),
        ("{a: env.REGION, b: [inputs.c]}", {"env", "env.REGION", "inputs", "inputs.c"}),
        ("steps.*.status", {"steps"}),
        ('steps."get-balance".status', {"steps", "steps.get-balance"}),
        ("steps.balance.body | items[0]", {"steps", "steps.balance"}),
        ("`1`", set()),
    ],
)
def test_pill_roots(expression: str, roots: set[str]) -> None:
    assert pill_roots(expression) == roots


def test_pill_roots_rejects_bad_syntax() -> None:
    with pytest.raises(DataPillError, match="unexpected"):
        pill_roots("steps..x")


# --- helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("x", "x"), (None, ""), (True, "true"), (False, "false"), (3, "3"), (2.5, "2.5"),
        ({"a": [1, "é"]}, '{"a":[1,"é"]}'), ([], "[]"),
    ],
)
def test_value_to_text(value: Any, text: str) -> None:
    assert value_to_text(value) == text


def test_format_path() -> None:
    assert format_path(("steps", "get-balance", "items", 0, "sku")) == 'steps."get-balance".items[0].sku'


# --- properties ---------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
_template_text = st.lists(
    st.sampled_from(["{{", "}}", "{", "}", "\\", "'", '"', "`", " ", ".", "inputs", "steps", "x", "[0]",
                     "||", "&", "(", ")", "length", "@", "*", "?", "=="]) | st.text(max_size=4),
    max_size=10,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(template=_template_text | st.text(), value=_json, data=_json)
def test_render_raises_only_flowrun_errors(template: str, value: Any, data: Any) -> None:
    context = {"inputs": data, "steps": {"s": {"body": value}}, "env": {}}
    for candidate in (template, [template, value], {"k": template}):
        with contextlib.suppress(FlowrunError):
            render(candidate, context)


@settings(max_examples=200, deadline=None)
@given(value=_json)
def test_render_without_pills_returns_an_equal_value(value: Any) -> None:
    def has_open(item: Any) -> bool:
        if isinstance(item, str):
            return "{{" in item
        if isinstance(item, dict):
            return any(has_open(child) for child in item.values())
        if isinstance(item, list):
            return any(has_open(child) for child in item)
        return False

    if not has_open(value):
        assert render(value, {}) == value


def test_generated_values_are_the_whitelisted_functions() -> None:
    import datetime
    import re
    import uuid

    first, second = render("{{ uuid() }}", {}), render("{{ uuid() }}", {})
    assert uuid.UUID(first).version == 4 and first != second
    stamp = render("{{ now() }}", {})
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    parsed = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    assert abs((datetime.datetime.now(datetime.UTC) - parsed).total_seconds()) < 3600
    assert render("{{ now('%Y') }}", {}) == stamp[:4]
    assert render("day-{{ now('%Y%m%d') }}", {}) == "day-" + stamp[:10].replace("-", "")
    rolls = {render("{{ random_int(`1`, `3`) }}", {}) for _ in range(200)}
    assert rolls == {1, 2, 3}
    assert render("{{ random_int(`5`, `5`) }}", {}) == 5


@pytest.mark.parametrize(("template", "message"), [
    ("{{ uuid(`1`) }}", "uuid() takes 0 arguments, got 1"),
    ("{{ now('a', 'b') }}", "now() takes at most 1 argument, got 2"),
    ("{{ random_int(`1`) }}", "random_int() takes 2 arguments, got 1"),
    ("{{ uuidd() }}", "did you mean uuid()?"),
])
def test_generated_value_functions_are_checked_before_running(template: str, message: str) -> None:
    with pytest.raises(DataPillError, match=re.escape(message)):
        check_pill(template[2:-2].strip())


@pytest.mark.parametrize(("template", "message"), [
    ("{{ random_int(`3`, `1`) }}", "a <= b"),
    ("{{ random_int(`1.5`, `3`) }}", "whole numbers"),
    ("{{ now(`1`) }}", "now() expects string, got number"),
])
def test_generated_value_functions_refuse_bad_arguments(template: str, message: str) -> None:
    with pytest.raises(DataPillError, match=re.escape(message)):
        render(template, {})
