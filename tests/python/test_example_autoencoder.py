"""Smoke test of examples/autoencoder.py: two epochs, the reconstruction error must fall and
the PNG of inputs beside reconstructions must be written."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_autoencoder_loss_falls_and_png_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("sklearn")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.delitem(sys.modules, "autoencoder", raising=False)
    autoencoder = importlib.import_module("autoencoder")
    png = tmp_path / "ae.png"
    result = autoencoder.main(["--epochs", "2", "--quiet", "--png", str(png)])
    losses = result["losses"]
    assert len(losses) == 2
    assert losses[-1] < losses[0]
    assert result["seconds"] > 0.0
    assert Path(result["png"]) == png
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
