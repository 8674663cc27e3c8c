"""conv2d_backward against torch.autograd and conv_transpose2d against torch, over random
configurations (at least 200 each: Hypothesis runs max(200, the profile's count)).

torch works in NCHW / OIHW; NHWC arrays go through transposes. Asymmetric padding is applied
with F.pad before torch's conv2d, and by cropping torch's unpadded conv_transpose2d output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import as_pair, resolve_padding, uniform

import convx

torch = pytest.importorskip("torch")
F = torch.nn.functional

LAYOUTS = ["NHWC", "NCHW"]
MANY = settings(max_examples=max(200, settings.default.max_examples))


def to_nchw(a: np.ndarray, layout: str) -> np.ndarray:
    """A batch (4-D) or single image (3-D) in `layout` as a 4-D NCHW array."""
    if a.ndim == 3:
        a = a[None]
    return a if layout == "NCHW" else a.transpose(0, 3, 1, 2)


def from_nchw(a: np.ndarray, layout: str, single: bool) -> np.ndarray:
    if layout == "NHWC":
        a = a.transpose(0, 2, 3, 1)
    return a[0] if single else a


def conv_weight_to_oihw(w: np.ndarray, layout: str) -> np.ndarray:
    return w if layout == "NCHW" else w.transpose(0, 3, 1, 2)       # OHWI -> OIHW


def conv_weight_from_oihw(w: np.ndarray, layout: str) -> np.ndarray:
    return w if layout == "NCHW" else w.transpose(0, 2, 3, 1)       # OIHW -> OHWI


def tensor(a: np.ndarray, grad: bool = False) -> Any:
    return torch.tensor(np.ascontiguousarray(a), requires_grad=grad)


def assert_matches(got: Any, want: np.ndarray, dtype: type, name: str) -> None:
    """float64 to ~1e-10 relative, float32 to ~1e-5, relative to the largest value."""
    assert isinstance(got, np.ndarray), f"{name}: {type(got)}"
    assert got.dtype == dtype, f"{name}: dtype {got.dtype}"
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    tol = 1e-10 if dtype == np.float64 else 1e-5
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=name)


# --------------------------------------------------------------------------------------
# conv2d_backward against torch.autograd
# --------------------------------------------------------------------------------------

pad = st.integers(0, 3)
padding_st = st.one_of(
    pad,
    st.tuples(pad, pad),
    st.tuples(st.tuples(pad, pad), st.tuples(pad, pad)),
    st.sampled_from(["valid", "same", "same_lower"]),
)
pair_st = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))


@st.composite
def channels_st(draw: st.DrawFn) -> tuple[int, int, int]:
    """(groups, channels per group on the input side, per group on the output side)."""
    kind = draw(st.sampled_from(["plain", "plain", "grouped", "depthwise"]))
    if kind == "plain":
        return 1, draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if kind == "grouped":
        return draw(st.integers(2, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return draw(st.integers(1, 8)), 1, draw(st.integers(1, 2))


@st.composite
def conv_configs(draw: st.DrawFn) -> dict[str, Any]:
    groups, c_g, m_g = draw(channels_st())
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride, dilation, padding = draw(pair_st), draw(pair_st), draw(padding_st)
    hw = []
    for axis in (0, 1):
        eff_k = (k[axis] - 1) * as_pair(dilation)[axis] + 1
        if isinstance(padding, str):
            low = 1 if padding != "valid" else eff_k
        else:
            low = max(1, eff_k - sum(resolve_padding(padding, (0, 0), (1, 1))[axis]))
        hw.append(draw(st.integers(low, low + 6)))
    return {
        "layout": draw(st.sampled_from(LAYOUTS)), "n": draw(st.sampled_from([None, 1, 2, 3])),
        "groups": groups, "c_in": groups * c_g, "c_out": groups * m_g, "k": k,
        "hw": tuple(hw), "stride": stride, "dilation": dilation, "padding": padding,
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def torch_conv_gradients(x: np.ndarray, weight: np.ndarray, bias: np.ndarray,
                         g_of: Any, geo: dict[str, Any]
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(y, grad_out, dx, dw, db) by torch.autograd, in convx's layout; g_of(y_shape) makes
    grad_out once torch has given the output's shape."""
    layout, single = geo["layout"], x.ndim == 3
    xt = tensor(to_nchw(x, layout), grad=True)
    wt = tensor(conv_weight_to_oihw(weight, layout), grad=True)
    bt = tensor(bias, grad=True)
    k_hw = tuple(wt.shape[2:])
    (top, bottom), (left, right) = resolve_padding(geo["padding"], tuple(xt.shape[2:]), k_hw,
                                                   geo["stride"], geo["dilation"])
    if top == bottom and left == right:
        yt = F.conv2d(xt, wt, bt, stride=as_pair(geo["stride"]), padding=(top, left),
                      dilation=as_pair(geo["dilation"]), groups=geo["groups"])
    else:
        yt = F.conv2d(F.pad(xt, (left, right, top, bottom)), wt, bt,
                      stride=as_pair(geo["stride"]), dilation=as_pair(geo["dilation"]),
                      groups=geo["groups"])
    y = from_nchw(yt.detach().numpy(), layout, single)
    g = g_of(y.shape)
    yt.backward(tensor(to_nchw(g, layout)))
    dx = from_nchw(xt.grad.numpy(), layout, single)
    dw = conv_weight_from_oihw(wt.grad.numpy(), layout)
    return y, g, dx, dw, bt.grad.numpy()


def check_against_torch(config: dict[str, Any], dtype: type) -> None:
    rng = np.random.default_rng(config["seed"])
    layout = config["layout"]
    geo = {key: config[key] for key in ("stride", "padding", "dilation", "groups", "layout")}
    h, w = config["hw"]
    c_in, c_out, groups = config["c_in"], config["c_out"], config["groups"]
    spatial = (h, w, c_in) if layout == "NHWC" else (c_in, h, w)
    x = uniform(rng, spatial if config["n"] is None else (config["n"], *spatial), dtype)
    k_h, k_w = config["k"]
    w_shape = ((c_out, k_h, k_w, c_in // groups) if layout == "NHWC"
               else (c_out, c_in // groups, k_h, k_w))
    weight = uniform(rng, w_shape, dtype)
    bias = uniform(rng, (c_out,), dtype)
    y, g, want_dx, want_dw, want_db = torch_conv_gradients(
        x, weight, bias, lambda shape: uniform(rng, shape, dtype), geo)
    assert_matches(convx.conv2d(x, weight, bias, **geo), y, dtype, "y")
    dx, dw, db = convx.conv2d_backward(g, x, weight, **geo)
    assert_matches(dx, want_dx, dtype, "dx")
    assert_matches(dw, want_dw, dtype, "dw")
    assert_matches(db, want_db, dtype, "db")


@MANY
@given(config=conv_configs())
def test_conv2d_backward_matches_torch_autograd(config: dict[str, Any]) -> None:
    check_against_torch(config, np.float64)


@settings(max_examples=20)
@given(config=conv_configs())
def test_conv2d_backward_matches_torch_autograd_float32(config: dict[str, Any]) -> None:
    check_against_torch(config, np.float32)


# --------------------------------------------------------------------------------------
# conv_transpose2d against torch
# --------------------------------------------------------------------------------------

@st.composite
def transpose_configs(draw: st.DrawFn) -> dict[str, Any]:
    groups, c_g, m_g = draw(channels_st())
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride, dilation = draw(pair_st), draw(pair_st)
    hw = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    pads, output_padding = [], []
    for axis in (0, 1):
        s, d = as_pair(stride)[axis], as_pair(dilation)[axis]
        o = draw(st.integers(0, max(s, d) - 1))
        full = (hw[axis] - 1) * s + d * (k[axis] - 1) + 1 + o
        before = draw(st.integers(0, min(3, full - 1)))
        after = draw(st.integers(0, min(3, full - 1 - before)))
        pads.append((before, after))
        output_padding.append(o)
    # The explicit ((top, bottom), (left, right)) form, or a pair when it is symmetric.
    padding: Any = (pads[0], pads[1])
    if draw(st.booleans()) and pads[0][0] == pads[0][1] and pads[1][0] == pads[1][1]:
        padding = (pads[0][0], pads[1][0])
    o_h, o_w = output_padding
    return {
        "layout": draw(st.sampled_from(LAYOUTS)), "n": draw(st.sampled_from([None, 1, 2, 3])),
        "groups": groups, "c_in": groups * c_g, "m_g": m_g, "k": k, "hw": hw,
        "stride": stride, "dilation": dilation, "padding": padding,
        "output_padding": o_h if o_h == o_w and draw(st.booleans()) else (o_h, o_w),
        "bias": draw(st.booleans()), "seed": draw(st.integers(0, 2**32 - 1)),
    }


def torch_conv_transpose(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                         geo: dict[str, Any]) -> np.ndarray:
    """F.conv_transpose2d in convx's layout; asymmetric padding by cropping the unpadded
    result (pad_top rows at the top, pad_bottom at the bottom, and so on)."""
    layout, single = geo["layout"], x.ndim == 3
    xt = tensor(to_nchw(x, layout))
    # (C_in, k_h, k_w, C_out/groups) -> torch's (C_in, C_out/groups, k_h, k_w)
    wt = tensor(weight if layout == "NCHW" else weight.transpose(0, 3, 1, 2))
    bt = None if bias is None else tensor(bias)
    (top, bottom), (left, right) = resolve_padding(geo["padding"], (0, 0), (1, 1))
    args = {"stride": as_pair(geo["stride"]), "output_padding": as_pair(geo["output_padding"]),
            "dilation": as_pair(geo["dilation"]), "groups": geo["groups"]}
    if top == bottom and left == right:
        yt = F.conv_transpose2d(xt, wt, bt, padding=(top, left), **args)
    else:
        yt = F.conv_transpose2d(xt, wt, bt, padding=0, **args)
        yt = yt[:, :, top:yt.shape[2] - bottom, left:yt.shape[3] - right]
    return from_nchw(yt.numpy(), layout, single)


def check_transpose_against_torch(config: dict[str, Any], dtype: type) -> None:
    rng = np.random.default_rng(config["seed"])
    layout = config["layout"]
    geo = {key: config[key] for key in ("stride", "padding", "output_padding", "dilation",
                                        "groups", "layout")}
    h, w = config["hw"]
    c_in, m_g, groups = config["c_in"], config["m_g"], config["groups"]
    spatial = (h, w, c_in) if layout == "NHWC" else (c_in, h, w)
    x = uniform(rng, spatial if config["n"] is None else (config["n"], *spatial), dtype)
    k_h, k_w = config["k"]
    w_shape = (c_in, k_h, k_w, m_g) if layout == "NHWC" else (c_in, m_g, k_h, k_w)
    weight = uniform(rng, w_shape, dtype)
    bias = uniform(rng, (m_g * groups,), dtype) if config["bias"] else None
    want = torch_conv_transpose(x, weight, bias, geo)
    assert_matches(convx.conv_transpose2d(x, weight, bias, **geo), want, dtype, "y")


@MANY
@given(config=transpose_configs())
def test_conv_transpose2d_matches_torch(config: dict[str, Any]) -> None:
    check_transpose_against_torch(config, np.float64)


@settings(max_examples=20)
@given(config=transpose_configs())
def test_conv_transpose2d_matches_torch_float32(config: dict[str, Any]) -> None:
    check_transpose_against_torch(config, np.float32)


def test_torch_comparison_catches_a_wrong_value() -> None:
    # The tolerance above is far below an indexing error; a tiny one must already fail.
    rng = np.random.default_rng(9)
    x = uniform(rng, (2, 5, 6, 3), np.float64)
    weight = uniform(rng, (3, 3, 3, 4), np.float64)
    want = torch_conv_transpose(x, weight, None, {"stride": 2, "padding": 1,
                                                  "output_padding": 1, "dilation": 1,
                                                  "groups": 1, "layout": "NHWC"})
    wrong = want.copy()
    wrong[1, 2, 3, 0] += 1e-7
    with pytest.raises(AssertionError):
        assert_matches(wrong, want, np.float64, "wrong")
