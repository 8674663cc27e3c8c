"""conv2d's repeated-call shortcuts against its general path.

A repeated conv2d call first tries the operator of the last cached call (functional._last,
matched by the identity of its plain arguments), then the operator cache (_OPS, by key),
and only then normalises its arguments (_conv2d_general). Both shortcuts must give exactly
what the general path gives, value and error alike, and the tests named after a shortcut
check that it ran.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import convx
from convx import _core, functional

Outcome = tuple[str, Any]


def outcome(fn: Callable[[], Any]) -> Outcome:
    """("ok", result) or (exception type name, message)."""
    try:
        return "ok", fn()
    except (TypeError, ValueError) as e:
        return type(e).__name__, str(e)


def same(a: Outcome, b: Outcome) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] != "ok":
        return bool(a[1] == b[1])
    return bool(a[1].dtype == b[1].dtype and a[1].shape == b[1].shape
                and np.array_equal(a[1], b[1]))


def general(x: Any, w: Any, b: Any = None, *, stride: Any = 1, padding: Any = 0,
            dilation: Any = 1, groups: Any = 1, layout: Any = "NHWC", activation: Any = None,
            flip: Any = False, out: Any = None, padding_mode: Any = "zeros",
            algorithm: Any = "auto") -> Any:
    """conv2d by its general path alone, with an empty cache (restored afterwards)."""
    saved, saved_last = functional._OPS, functional._last
    functional._OPS, functional._last = {}, None
    try:
        return functional._conv2d_general(x, w, b, stride, padding, dilation, groups, layout,
                                          activation, flip, out, padding_mode, algorithm)
    finally:
        functional._OPS, functional._last = saved, saved_last


class TryCallSpy:
    """Stands for a cached operator and counts its try_call calls."""

    def __init__(self, op: _core.Conv2dOp) -> None:
        self.op = op
        self.calls = 0

    def try_call(self, x: Any, w: Any, b: Any, out: Any) -> Any:
        self.calls += 1
        return self.op.try_call(x, w, b, out)


class Unreadable(dict[Any, Any]):
    """An operator cache whose lookups fail the test."""

    def get(self, *args: Any) -> Any:
        raise AssertionError("the call looked its key up")


def forbid_general_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> Any:
        raise AssertionError("the call left the shortcut")

    monkeypatch.setattr(functional, "_conv2d_general", refuse)
    monkeypatch.setattr(functional, "_conv2d_uncached", refuse)


def test_the_last_operator_shortcut_serves_a_repeated_call(
        monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 8, 8, 1), dtype=np.float32)
    w = rng.standard_normal((4, 3, 3, 1), dtype=np.float32)
    b = rng.standard_normal(4, dtype=np.float32)
    x2 = rng.standard_normal((1, 8, 8, 1), dtype=np.float32)
    want2 = general(x2, w, b, stride=1, padding=1)
    first = convx.conv2d(x, w, b, stride=1, padding=1)
    last = functional._last
    assert last is not None and last[0] is functional._OPS
    spy = TryCallSpy(last[1])
    # A cache that cannot be read: the key path is not taken either.
    unreadable = Unreadable(functional._OPS)
    monkeypatch.setattr(functional, "_OPS", unreadable)
    monkeypatch.setattr(functional, "_last", (unreadable, spy, *last[2:]))
    forbid_general_paths(monkeypatch)
    got = convx.conv2d(x2, w, b, stride=1, padding=1)
    assert spy.calls == 1
    np.testing.assert_array_equal(got, want2)
    np.testing.assert_array_equal(convx.conv2d(x, w, b, stride=1, padding=1), first)
    assert spy.calls == 2


def test_the_key_shortcut_serves_a_call_seen_before_another(
        monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    monkeypatch.setattr(functional, "_OPS", {})
    x1 = rng.standard_normal((1, 6, 6, 2))
    x2 = rng.standard_normal((2, 5, 7, 2))
    w = rng.standard_normal((3, 3, 3, 2))
    want1, want2 = convx.conv2d(x1, w, padding=1), convx.conv2d(x2, w, padding=1)
    assert len(functional._OPS) == 2
    forbid_general_paths(monkeypatch)
    # x1's operator is not the last one: the shortcut declines and the key finds it.
    np.testing.assert_array_equal(convx.conv2d(x1, w, padding=1), want1)
    last = functional._last
    assert last is not None and last[1] is functional._OPS[
        (x1.shape, x1.dtype, w.shape, True, 1, 1, 1, 1, "NHWC", None, "zeros", "auto")]
    np.testing.assert_array_equal(convx.conv2d(x2, w, padding=1), want2)


def test_a_replaced_or_emptied_cache_drops_the_last_operator_shortcut(
        monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 5, 5, 1), dtype=np.float32)
    w = rng.standard_normal((2, 3, 3, 1), dtype=np.float32)
    convx.conv2d(x, w)
    assert functional._last is not None
    functional._forget_ops()
    assert functional._last is None and not functional._OPS
    convx.conv2d(x, w)
    last = functional._last
    assert last is not None
    spy = TryCallSpy(last[1])
    monkeypatch.setattr(functional, "_last", (last[0], spy, *last[2:]))
    monkeypatch.setattr(functional, "_OPS", {})  # a new cache: the old operator is not used
    convx.conv2d(x, w)
    assert spy.calls == 0 and len(functional._OPS) == 1


def test_a_kernel_path_change_drops_the_last_operator_shortcut(
        rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 5, 5, 1), dtype=np.float32)
    w = rng.standard_normal((2, 3, 3, 1), dtype=np.float32)
    convx.conv2d(x, w)
    assert functional._last is not None
    active = str(convx.cpu_info()["active"])
    convx._set_isa(active)
    assert functional._last is None


def _cases(rng: np.random.Generator) -> list[tuple[str, Any, Any, Any, dict[str, Any]]]:
    """(name, x, weight, bias, keyword arguments): calls the shortcuts take or decline."""
    x = rng.standard_normal((1, 8, 8, 1), dtype=np.float32)
    w = rng.standard_normal((4, 3, 3, 1), dtype=np.float32)
    b = rng.standard_normal(4, dtype=np.float32)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    out = np.empty((1, 8, 8, 4), np.float32)
    read_only = np.empty((1, 8, 8, 4), np.float32)
    read_only.setflags(write=False)
    big = rng.standard_normal((1, 10, 10, 1), dtype=np.float32)
    return [
        ("plain", x, w, b, {"padding": 1}),
        ("no bias", x, w, None, {"padding": 1}),
        ("float64", x64, w64, b.astype(np.float64), {"padding": 1}),
        ("out", x, w, b, {"padding": 1, "out": out}),
        ("another shape", big, w, b, {"padding": 1}),
        ("single image", x[0], w, b, {"padding": 1}),
        ("strided x", big[:, 1:9, 1:9, :], w, b, {"padding": 1}),
        ("fortran weight", x, np.asfortranarray(w), b, {"padding": 1}),
        ("byte-swapped x", x.astype(">f4"), w, b, {"padding": 1}),
        ("mixed dtypes", x64, w, b, {"padding": 1}),
        ("relu", x, w, b, {"padding": 1, "activation": "relu"}),
        ("reflect", x, w, b, {"padding": 1, "padding_mode": "reflect"}),
        ("gemm", x, w, b, {"padding": 1, "algorithm": "gemm"}),
        ("flip", x, w, b, {"padding": 1, "flip": True}),
        ("float stride", x, w, b, {"padding": 1, "stride": 1.0}),
        ("bool padding", x, w, b, {"padding": True}),
        ("wrong out shape", x, w, b, {"padding": 1, "out": np.empty((1, 6, 6, 4), np.float32)}),
        ("read-only out", x, w, b, {"padding": 1, "out": read_only}),
        ("out is x", out, np.ones((4, 1, 1, 4), np.float32), None, {"out": out}),
        ("wrong out dtype", x, w, b, {"padding": 1, "out": np.empty((1, 8, 8, 4))}),
        ("wrong bias", x, w, b[:3], {"padding": 1}),
        ("2-D bias", x, w, b[None], {"padding": 1}),
        ("list x", x.tolist(), w, b, {"padding": 1}),
        ("wrong channels", x, rng.standard_normal((4, 3, 3, 2), dtype=np.float32), b, {}),
        ("bad layout", x, w, b, {"layout": "NWHC"}),
        ("bad mode", x, w, b, {"padding": 1, "padding_mode": "mirror"}),
        ("bad algorithm", x, w, b, {"padding": 1, "algorithm": "fft"}),
        ("bad flip", x, w, b, {"padding": 1, "flip": 0}),
        ("bad stride", x, w, b, {"stride": 0}),
        ("kernel too big", x[:, :2, :2], w, b, {}),
    ]


@pytest.mark.parametrize("index", range(30))
def test_shortcuts_and_general_path_agree_on_values_and_errors(
        index: int, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    monkeypatch.setattr(functional, "_OPS", {})
    monkeypatch.setattr(functional, "_last", None)
    cases = _cases(rng)
    assert len(cases) == 30
    name, x, w, b, kwargs = cases[index]
    want = outcome(lambda: general(x, w, b, **kwargs))
    # Every case after every other one, so that each finds the cache and the last
    # operator in the state another call left (a shortcut declining where it must).
    for _, x0, w0, b0, kw0 in cases:
        outcome(functools.partial(convx.conv2d, x0, w0, b0, **kw0))
        first = outcome(lambda: convx.conv2d(x, w, b, **kwargs))
        again = outcome(lambda: convx.conv2d(x, w, b, **kwargs))
        assert same(first, want) and same(again, want), name


def test_try_call_is_a_strict_positional_call(rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 6, 6, 2), dtype=np.float32)
    w = rng.standard_normal((3, 3, 3, 2), dtype=np.float32)
    convx.conv2d(x, w)
    op = functional._OPS[(x.shape, x.dtype, w.shape, True, 1, 0, 1, 1, "NHWC", None,
                          "zeros", "auto")]
    np.testing.assert_array_equal(op.try_call(x, w, None, None), op(x, w, None, None))
    assert op.try_call(x.astype(np.float64), w, None, None) is None
    assert op.try_call(x[:, ::-1], w, None, None) is None
    assert op.try_call(x, w, np.zeros(4, np.float32), None) is None
    with pytest.raises(TypeError, match="positionally"):
        op.try_call(x, w, None)
    with pytest.raises(TypeError):
        op.try_call(x, w, None, out=None)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _core.Conv2dOp.try_call(object(), x, w, None, None)  # type: ignore[arg-type]
