"""Extra peak memory of one vgg16.conv2_2 call, measured in a fresh process.

    python -m convx.bench.memory_probe convx|convx_reflect|torch|torch_cl|torch_reflect|ort

prints one JSON line, {"extra_mib": ...}: the rise of the process's peak resident set during
one call at one thread, less the output's size (convx writes into an output the caller
made beforehand, so for convx nothing is subtracted). The *_reflect probes run the same
layer with padding_mode="reflect": convx applies the mode where it gathers patches, so its
figure should equal the zeros-padded one; torch pads a copy of the input first
(F.pad + conv2d, which is what nn.Conv2d(padding_mode="reflect") runs). Each library is
first initialised on a small layer. Linux only (it reads and resets /proc/self's counters).
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from typing import Any

import numpy as np

import convx
from convx.bench.suite import (
    MEMORY_LAYER,
    WARMUP_LAYER,
    Runner,
    layer_named,
    make_inputs,
    ort_session,
    torch_runner,
)

LIBRARIES = ("convx", "convx_reflect", "torch", "torch_cl", "torch_reflect", "ort")


def _prepare(lib: str) -> tuple[Runner, int]:
    """The call to measure, after the library has run once on a small layer, and the bytes
    of the output that the call itself allocates."""
    layer, warm = layer_named(MEMORY_LAYER), layer_named(WARMUP_LAYER)
    x, w, b = make_inputs(layer)
    out_bytes = layer.n * layer.out_hw[0] * layer.out_hw[1] * layer.c_out * 4
    xs, ws, bs = make_inputs(warm)
    if lib in ("convx", "convx_reflect"):
        mode = "reflect" if lib == "convx_reflect" else "zeros"
        convx.set_num_threads(1)
        convx.conv2d(xs, ws, bs, stride=warm.stride, padding=warm.pad, padding_mode=mode)
        out = np.empty((layer.n, *layer.out_hw, layer.c_out), np.float32)
        out.fill(0)  # touched now: the output's pages are the caller's, not the call's
        return (lambda: convx.conv2d(x, w, b, stride=layer.stride, padding=layer.pad,
                                     out=out, padding_mode=mode)), 0
    if lib == "torch_reflect":
        import torch

        torch.set_num_threads(1)
        runs = []
        for lay, xa, wa, ba in ((warm, xs, ws, bs), (layer, x, w, b)):
            xt = torch.from_numpy(np.ascontiguousarray(xa.transpose(0, 3, 1, 2)))
            wt = torch.from_numpy(np.ascontiguousarray(wa.transpose(0, 3, 1, 2)))
            bt = torch.from_numpy(ba)

            def reflect_run(xt: Any = xt, wt: Any = wt, bt: Any = bt, lay: Any = lay) -> object:
                xp = torch.nn.functional.pad(xt, (lay.pad,) * 4, mode="reflect")
                return torch.nn.functional.conv2d(xp, wt, bt, stride=lay.stride)

            runs.append(reflect_run)
        runs[0]()
        return runs[1], out_bytes
    if lib in ("torch", "torch_cl"):
        import torch

        torch.set_num_threads(1)
        channels_last = lib == "torch_cl"
        warm_run = torch_runner(warm, xs, ws, bs, channels_last=channels_last)
        run = torch_runner(layer, x, w, b, channels_last=channels_last)
        if warm_run is None or run is None:
            raise ImportError("torch")
        warm_run()
        return run, out_bytes
    if lib == "ort":
        ort_session(warm, ws, bs, 1).run(
            None, {"X": np.ascontiguousarray(xs.transpose(0, 3, 1, 2))})
        sess = ort_session(layer, w, b, 1)
        feed = {"X": np.ascontiguousarray(x.transpose(0, 3, 1, 2))}
        return (lambda: sess.run(None, feed)), out_bytes
    raise ValueError(f"library must be one of {', '.join(LIBRARIES)}, got {lib!r}")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(lib: str) -> float:
    """MiB by which one call raises this process's peak resident set, less its output."""
    run, out_bytes = _prepare(lib)
    # The peak-RSS high-water mark may already have been raised by earlier, freed
    # allocations, which would hide the call's own peak. So freed heap goes back to the
    # OS, the kernel's counter (VmHWM) is reset through clear_refs, and read after the call.
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    result = run()
    after = _status_kib("VmHWM")
    del result
    return ((after - before) * 1024 - out_bytes) / 2**20


def extra_memory_mib(lib: str) -> float | None:
    """Runs the probe for `lib` in a new interpreter; None when it fails (not installed)."""
    proc = subprocess.run([sys.executable, "-m", "convx.bench.memory_probe", lib],
                          capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["extra_mib"])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in LIBRARIES:
        print(f"usage: python -m convx.bench.memory_probe {{{'|'.join(LIBRARIES)}}}",
              file=sys.stderr)
        return 2
    print(json.dumps({"extra_mib": measure(args[0])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
