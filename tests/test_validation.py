"""Tests of minivae.utils.validation: the one rule per kind of input, and its one message.

Every check takes the value first and the name second and raises with the template
``{name} must be {expected}, got {given}``; each has an example in its docstring, run here
as a doctest.  The property tests draw values of every kind (hypothesis) and check that a
check either returns the value in its documented form or raises the documented error type
with the template.
"""
import doctest
import inspect
import io
import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minivae.utils import validation
from minivae.utils.validation import (check_array_dict, check_bool, check_callable, check_choice,
                                      check_count, check_counts, check_finite, check_float_array,
                                      check_float_dtype, check_keys, check_number,
                                      check_numeric_array, check_rng, check_shape, check_stream,
                                      check_type, check_unit_interval)

CHECKS = [f for name, f in vars(validation).items()
          if name.startswith("check_") and inspect.isfunction(f)]
# anything a caller might pass by mistake
ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(),
                     st.text(max_size=5), st.lists(st.integers(), max_size=3),
                     st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
                     st.just(np.random.default_rng(0)), st.just(np.float32(2.0)), st.just(np.int64(3)))


def template(name):
    """The one message: '{name} must be {expected}, got {given}'."""
    return re.compile(rf"^{re.escape(name)} must be .+, got .+$", re.DOTALL)


def test_every_example_in_the_validation_module_runs_as_a_doctest():
    failures, attempted = doctest.testmod(validation, optionflags=doctest.ELLIPSIS)
    assert attempted >= len(CHECKS) and failures == 0


@pytest.mark.parametrize("check", CHECKS, ids=lambda f: f.__name__)
def test_every_check_has_an_example_and_takes_the_value_first_and_the_name_second(check):
    assert ">>> " + check.__name__ + "(" in check.__doc__, f"{check.__name__} has no example"
    assert list(inspect.signature(check).parameters)[:2] in (["value", "name"], ["x", "name"])


@given(value=ANYTHING, low=st.integers(0, 2))
def test_check_count_returns_an_int_or_raises_with_the_template(value, low):
    try:
        result = check_count(value, "n", low)
    except (TypeError, ValueError) as error:
        assert template("n").match(str(error))
        assert isinstance(error, TypeError) == (isinstance(value, bool) or not isinstance(
            value, (int, float, np.integer, np.floating)))
    else:
        assert type(result) is int and result >= low and result == value


@given(value=ANYTHING, low=st.sampled_from([None, 0.0, 1.0]), high=st.sampled_from([None, 1.0, 5.0]))
def test_check_number_returns_a_finite_float_in_range_or_raises_with_the_template(value, low, high):
    try:
        result = check_number(value, "beta", low=low, high=high)
    except (TypeError, ValueError) as error:
        assert template("beta").match(str(error))
    else:
        assert type(result) is float and math.isfinite(result)
        assert (low is None or result >= low) and (high is None or result <= high)


@given(value=ANYTHING)
def test_check_bool_accepts_only_true_and_false(value):
    try:
        result = check_bool(value, "flag")
    except TypeError as error:
        assert template("flag").match(str(error))
        assert not isinstance(value, bool)
    else:
        assert result is value


@given(value=st.one_of(ANYTHING, st.sampled_from(["A", "B", "iwae"])))
def test_check_choice_accepts_only_the_registry_names(value):
    try:
        assert check_choice(value, "estimator", ("B", "A", "iwae")) in ("B", "A", "iwae")
    except (TypeError, ValueError) as error:
        assert str(error).startswith("estimator must be one of ['A', 'B', 'iwae'], got ")


@given(value=ANYTHING)
def test_check_rng_and_check_stream_and_check_callable_name_what_they_want(value):
    for check, name in [(check_rng, "rng"), (check_stream, "stream"), (check_callable, "f")]:
        try:
            check(value, name)
        except TypeError as error:
            assert template(name).match(str(error))
    assert check_stream(io.StringIO(), "stream") is not None and check_stream(None) is None


@given(value=st.one_of(st.lists(st.integers(-3, 600), max_size=4), ANYTHING))
def test_check_counts_gives_a_tuple_of_positive_ints_or_the_template(value):
    try:
        result = check_counts(value, "hidden")
    except (TypeError, ValueError) as error:
        assert re.match(r"^hidden(\[\d+\])? must be .+, got .+$", str(error))
    else:
        assert isinstance(result, tuple) and all(type(v) is int and v >= 1 for v in result)


@given(rows=st.lists(st.lists(st.floats(allow_nan=False), min_size=0, max_size=3), max_size=3))
def test_check_numeric_array_turns_ragged_lists_into_a_value_error(rows):
    ragged = len({len(r) for r in rows}) > 1
    try:
        x = check_numeric_array(rows, "x")
    except ValueError as error:
        assert ragged and str(error) == ("x must be an array of real numbers (rows of equal "
                                         "length), got a ragged list")
    else:
        assert not ragged and x.dtype.kind in "biuf"


@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)),
       shape=st.lists(st.one_of(st.integers(0, 3), st.just("B"), st.none()), max_size=3))
def test_check_shape_accepts_exactly_the_shapes_it_describes(x, shape):
    fits = x.ndim == len(shape) and all(
        want is None or (n >= 1 if want == "B" else n == want) for n, want in zip(x.shape, shape))
    try:
        assert check_shape(x, "x", tuple(shape)) is x
    except ValueError as error:
        assert not fits and template("x").match(str(error))
        assert str(error).endswith(f"got an array of shape {x.shape}")
    else:
        assert fits


@given(x=hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(-2, 2) | st.sampled_from(
    [np.nan, np.inf, -np.inf])))
def test_check_finite_and_check_unit_interval_name_the_offending_values(x):
    try:
        check_finite(x, "x")
    except ValueError as error:
        i = int(np.argmax(~np.isfinite(x)))
        assert str(error) == f"x must be finite (no NaN or inf), got {float(x[i])!r} at index ({i},)"
    else:
        assert np.isfinite(x).all()
    try:
        check_unit_interval(x, "x")
    except ValueError as error:
        assert template("x").match(str(error))
    else:
        assert ((x >= 0) & (x <= 1)).all()


def test_dict_and_array_rules_refuse_what_an_in_place_algorithm_cannot_use():
    with pytest.raises(TypeError, match=r"^params\['W'\] must be a NumPy array of floats, got an "
                                        r"array of shape \(2,\) and dtype int64$"):
        check_array_dict({"W": np.array([1, 2])}, "params")
    with pytest.raises(TypeError, match=r"^W must be a NumPy array of floats, got list$"):
        check_float_array([1.0], "W")
    with pytest.raises(ValueError, match=r"^grads must be a dict with the keys \['W', 'b'\], got "
                                         r"one missing \[\] and with the extra keys \['c'\]$"):
        check_keys({"W": 0, "b": 0, "c": 0}, "grads", ["W", "b"])
    with pytest.raises(TypeError, match=r"^model must be a minivae.VAE, got str$"):
        check_type("vae", "model", dict, "a minivae.VAE")
    with pytest.raises(ValueError, match=r"^dtype must be float32 or float64, got 'float16'$"):
        check_float_dtype(np.float16)


def test_every_call_in_the_package_and_tutorials_passes_the_value_first_and_the_name_second():
    # a name is text: a string or an f-string; it never comes first, and a literal second
    # argument is always text (check_count(2, "n") is right, check_count("n", 2) is not)
    import ast
    from pathlib import Path

    root = Path(validation.__file__).resolve().parents[2]
    names = {f.__name__ for f in CHECKS}
    wrong = []
    for path in sorted([*root.joinpath("minivae").rglob("*.py"), *root.joinpath("tutorials").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(
                    node.func, "attr", None)) in names and len(node.args) >= 2):
                continue
            first, second = node.args[:2]
            text = (ast.JoinedStr, ast.Constant)
            if (isinstance(first, ast.JoinedStr) or (isinstance(first, ast.Constant) and isinstance(first.value, str))
                    or (isinstance(second, text) and not isinstance(getattr(second, "value", ""), str))):
                wrong.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not wrong, f"name first or value second in {wrong}"
