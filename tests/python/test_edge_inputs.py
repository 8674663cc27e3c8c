"""Inputs at the edges of what the API accepts: byte order, empty channels, flags."""

from __future__ import annotations

import numpy as np
import pytest

import convx


def test_big_endian_input_is_converted_not_rejected() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 6, 6, 2))
    w = rng.standard_normal((3, 3, 3, 2))
    expected = convx.conv2d(x, w, padding=1)
    got = convx.conv2d(x.astype(">f8"), w.astype(">f8"), padding=1)
    assert got.dtype == np.float64 and got.dtype.isnative
    np.testing.assert_array_equal(got, expected)


def test_zero_input_channels_names_x() -> None:
    with pytest.raises(ValueError, match="channel count must be >= 1, got 0"):
        convx.conv2d(np.zeros((1, 4, 4, 0), np.float32), np.zeros((2, 1, 1, 0), np.float32))


@pytest.mark.parametrize("flip", ["yes", 1, None])
def test_flip_must_be_a_bool(flip: object) -> None:
    x = np.zeros((1, 4, 4, 1), np.float32)
    w = np.zeros((1, 3, 3, 1), np.float32)
    with pytest.raises(TypeError, match="flip"):
        convx.conv2d(x, w, flip=flip)  # type: ignore[arg-type]
