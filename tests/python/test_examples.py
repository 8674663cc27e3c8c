"""Smoke tests of the Python examples in examples/: a few epochs, and the loss must fall.

The full runs (accuracy targets, timings) are the examples' own job; these only show that
an example still runs against the current API and learns.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def train_digits(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    pytest.importorskip("sklearn")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    yield importlib.import_module("train_digits")
    sys.modules.pop("train_digits", None)


def test_train_digits_loss_falls(train_digits: ModuleType) -> None:
    result = train_digits.main(["--epochs", "2", "--quiet"])
    losses = result["losses"]
    assert len(losses) == 2
    assert losses[-1] < losses[0]
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert result["seconds"] > 0.0


def test_train_digits_without_tqdm_prints_a_line_per_epoch(
    train_digits: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` raise ImportError
    train_digits.main(["--epochs", "2", "--batch-size", "64"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[:2]] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert lines[2].startswith("test accuracy ")
