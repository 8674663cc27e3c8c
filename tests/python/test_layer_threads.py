"""A Conv2D layer called from several threads while another thread assigns its weight, bias
or geometry: every call computes with one whole state (the one before or the one after an
assignment), and once an assignment returns, no call, cached operator or call in flight brings
an older state back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import convx
from convx import _core

_CALLERS = 3
_ROUNDS = 70  # ten of each kind of round in _steps
_MAX_CALLS = 100_000  # a bound on each caller's loop; the main thread ends it long before
# (N, 3, W, 3) is a valid input in both layouts for 3 input channels, so the layout can be
# reassigned as well. Every call does more than 16K multiply-adds, so the C++ core releases
# the GIL while it runs and the callers' calls overlap the assignments.
_X_SHAPE = (4, 3, 32, 3)
_GEOMETRY = ("stride", "padding", "dilation", "activation", "layout")


def _answer(x: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    """The layer's output for the state `state`, computed by the functional API."""
    return convx.conv2d(x, state["weight"], state["bias"], stride=state["stride"],
                        padding=state["padding"], dilation=state["dilation"],
                        activation=state["activation"], layout=state["layout"])


def _public_state(layer: convx.Conv2D) -> dict[str, Any]:
    state = {name: getattr(layer, name) for name in _GEOMETRY}
    state["weight"], state["bias"] = layer.weight, layer.bias
    return state


def _steps(kind: int, rng: np.random.Generator) -> list[tuple[str, Any]]:
    """The assignments of one round. Every geometry change is undone in the same round, so
    every state of every round is a valid geometry for _X_SHAPE."""
    def weight() -> np.ndarray:
        return rng.standard_normal((16, 3, 3, 3)).astype(np.float32)

    def bias() -> np.ndarray:
        return rng.standard_normal(16).astype(np.float32)

    return [
        [("weight", weight()), ("bias", bias())],
        [("stride", 2), ("weight", weight()), ("stride", 1)],
        [("padding", ((0, 1), (2, 0))), ("bias", bias()), ("padding", 1)],
        [("dilation", 2), ("dilation", 1)],
        [("activation", "relu"), ("bias", bias()), ("activation", None)],
        [("layout", "NCHW"), ("weight", weight()), ("layout", "NHWC")],
        [("bias", None), ("weight", weight()), ("bias", bias())],
    ][kind]


def _run_round(layer: convx.Conv2D, x: np.ndarray, steps: list[tuple[str, Any]],
               answers: list[np.ndarray]) -> list[str]:
    """Makes the assignments `steps` while _CALLERS threads call layer(x) over and over, and
    returns what the callers saw go wrong. answers[i] is the output of the state after the
    first i assignments."""
    progress = [0]  # i once the i-th assignment has returned
    # started[i] is set when a call starts after the i-th assignment; the next assignment
    # waits for it, so it tends to land while a call that read state i is in flight.
    started = [threading.Event() for _ in answers]
    finished = threading.Event()
    errors: list[str] = []

    def call_repeatedly() -> None:
        try:
            for _ in range(_MAX_CALLS):
                last = finished.is_set()
                since = progress[0]
                started[since].set()
                y = layer(x)
                if not any(np.array_equal(y, a) for a in answers[since:]):
                    seen = [j for j, a in enumerate(answers) if np.array_equal(y, a)]
                    errors.append(f"a call started after assignment {since} computed with "
                                  f"state {seen or 'none of them'}")
                if last:
                    return
        except BaseException as exc:
            errors.append(f"a call raised {exc!r}")
        finally:
            for event in started:  # so that the main thread never waits for a stopped caller
                event.set()

    threads = [threading.Thread(target=call_repeatedly) for _ in range(_CALLERS)]
    for t in threads:
        t.start()
    try:
        started[0].wait()
        for i, (name, value) in enumerate(steps, 1):
            setattr(layer, name, value)
            progress[0] = i
            started[i].wait()
    finally:
        finished.set()
        for t in threads:
            t.join()
    return errors


def test_assignments_while_threads_call_the_layer() -> None:
    rng = np.random.default_rng(11)
    layer = convx.Conv2D(3, 16, 3, padding=1, seed=0)
    x = rng.standard_normal(_X_SHAPE).astype(np.float32)
    state = _public_state(layer)
    np.testing.assert_array_equal(layer(x), _answer(x, state))
    for round_ in range(_ROUNDS):
        steps = _steps(round_ % 7, rng)
        states = [state]
        for name, value in steps:
            states.append({**states[-1], name: value})
        answers = [_answer(x, s) for s in states]
        errors = _run_round(layer, x, steps, answers)
        assert errors == [], f"round {round_} ({[name for name, _ in steps]}): {errors[:3]}"
        # After the callers have stopped, the layer computes with its last state, which is
        # the one its attributes show.
        np.testing.assert_array_equal(layer(x), answers[-1])
        np.testing.assert_array_equal(layer(x), _answer(x, _public_state(layer)))
        state = states[-1]


def _op_class_running(pending: list[Callable[[], None]]) -> type:
    """A Conv2dOp whose bound calls run the functions in `pending` (each once) after they
    compute: the moment a call's C++ part has finished and the call has yet to cache its
    operator, where an assignment from another thread lands while the GIL is released."""

    class OpRunningAssignments(_core.Conv2dOp):  # type: ignore[misc]
        def bind(self, bias: Any) -> Any:
            bound = super().bind(bias)

            def run(x: Any, out: Any = None) -> Any:
                y = bound(x, out)
                while pending:
                    pending.pop()()
                return y

            return run

    return OpRunningAssignments


_NEW_WEIGHT = np.random.default_rng(1).standard_normal((16, 3, 3, 3)).astype(np.float32)
_NEW_BIAS = np.random.default_rng(2).standard_normal(16).astype(np.float32)


@pytest.mark.parametrize(("name", "value"), [
    ("weight", _NEW_WEIGHT), ("bias", _NEW_BIAS), ("bias", None), ("stride", 2),
    ("padding", 0), ("dilation", 2), ("activation", "relu"), ("layout", "NCHW"),
])
def test_assignment_during_a_call_is_not_undone(name: str, value: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    layer = convx.Conv2D(3, 16, 3, padding=1, seed=0)
    x = np.random.default_rng(3).standard_normal(_X_SHAPE).astype(np.float32)
    before = _answer(x, _public_state(layer))
    pending = [lambda: setattr(layer, name, value)]
    monkeypatch.setattr(_core, "Conv2dOp", _op_class_running(pending))
    # The first call validates, computes, and then caches its operator; the assignment lands
    # in between. That call computed with the old state...
    np.testing.assert_array_equal(layer(x), before)
    assert pending == []
    if isinstance(value, np.ndarray):
        np.testing.assert_array_equal(getattr(layer, name), value)
    else:
        assert getattr(layer, name) == value
    # ...and every later one computes with the new state: its operator was not kept.
    after = _answer(x, _public_state(layer))
    assert not np.array_equal(after, before)
    for _ in range(3):
        np.testing.assert_array_equal(layer(x), after)


def test_groups_assigned_during_a_call_is_not_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    # Weights (8, 3, 3, 4) take 4 input channels with groups=1 and 8 with groups=2.
    layer = convx.Conv2D(4, 8, 3, padding=1, seed=0)
    rng = np.random.default_rng(4)
    x4 = rng.standard_normal((2, 9, 9, 4)).astype(np.float32)
    x8 = rng.standard_normal((2, 9, 9, 8)).astype(np.float32)
    before = convx.conv2d(x4, layer.weight, layer.bias, padding=1)
    pending = [lambda: setattr(layer, "groups", 2)]
    monkeypatch.setattr(_core, "Conv2dOp", _op_class_running(pending))
    np.testing.assert_array_equal(layer(x4), before)
    assert pending == [] and layer.groups == 2
    for _ in range(2):
        with pytest.raises(ValueError, match="groups"):
            layer(x4)
    after = convx.conv2d(x8, layer.weight, layer.bias, padding=1, groups=2)
    for _ in range(3):
        np.testing.assert_array_equal(layer(x8), after)
