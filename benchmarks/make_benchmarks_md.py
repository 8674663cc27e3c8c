"""Render BENCHMARKS.md from the JSON files that `python -m convx bench --json PATH` writes.

    python benchmarks/make_benchmarks_md.py benchmarks/results/*.json > BENCHMARKS.md
    python benchmarks/make_benchmarks_md.py -o BENCHMARKS.md benchmarks/results/*.json
    python benchmarks/make_benchmarks_md.py --summary benchmarks/results/ONE.json [NETWORKS.json]

--summary prints instead the one performance table of README.md for a single run (and the
whole-networks row of a run of `python -m convx bench --networks`, when given).

Every figure in the output comes from those files; the runs are listed newest first. The
tables are drawn by convx.bench.report, the same code that prints them at the end of a run,
so convx must be importable (any install of it will do: only the results are read).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from convx.bench import report
from convx.bench.network_bench import networks_markdown

ROOT = Path(__file__).resolve().parent.parent
REGENERATE = "python benchmarks/make_benchmarks_md.py benchmarks/results/*.json > BENCHMARKS.md"

METHOD = """\
## Method

Each section below is one run of

```bash
pip install ".[bench]"
python -m convx bench --json benchmarks/results/NAME.json    # or python benchmarks/bench_conv.py
```

on the machine it names, with the convx kernel path (`convx.cpu_info()["active"]`), the
library versions and the exact command of that run. To add a run, put its JSON file in
`benchmarks/results/`, then rebuild this page with

```bash
{regenerate}
```

What a run measures:

- **Layers.** Twelve convolutions from real networks (ResNet-50, VGG-16, DeepLab, an MNIST
  model, a MobileNet depthwise layer), float32, NHWC for convx. PyTorch gets the same data
  as NCHW (`torch`) and as channels_last (`torch CL`), ONNX Runtime a one-node Conv model
  (`ORT`), and NumPy an im2col of strided views followed by one matmul per group.
  `convx Conv2D` is a layer whose filters were packed once (like an ONNX Runtime session);
  `convx conv2d` is the functional call, which packs them on every call.
- **Timing.** All libraries run in one process on the same inputs. A timed batch repeats
  one call until it lasts about a millisecond, and each figure is the median over at least
  eleven batches (more when `min_time` allows). At one thread the libraries take turns
  batch by batch in an order reshuffled every round, so a slow moment of the machine hits
  all of them. At two or more threads each library is timed in short blocks of its own,
  seven rounds in shuffled order with a pause before each block, because OpenBLAS and
  OpenMP workers keep spinning for a while after a call and would take the cores from
  whoever ran next. A 16 MiB block is freed before timing so that every layer sees the
  allocator in the same state.
- **Columns.** Gflop/s counts two operations per multiply-add of the defining sum.
  `% peak` compares convx's layer with the f32 FMA peak measured in the same process (the
  fastest of samples taken through the run, times the thread count). `convx / best anchor`
  divides convx's layer by the fastest of torch, torch CL and ORT on that row; the
  geometric mean of that ratio over the rows closes each table.
- **Forward + backward.** One training step's convolution on six of the layers (one of
  each kind; `python -m convx bench --no-backward` leaves the table out): convx's `Conv2D`
  call followed by its `backward` (dX returned, dW and db computed), against `F.conv2d`
  with autograd recording followed by `torch.autograd.grad` for the input, weight and bias,
  as NCHW (`torch`) and channels_last (`torch CL`) tensors; timed as above, in
  milliseconds. `best torch / convx` divides the faster torch format's time by convx's, so
  above 1 convx is faster. The dX and dW columns time the backward alone, apart:
  `convx.conv2d_backward` with `needs=("input",)` or `("weight", "bias")`, and
  `torch.autograd.grad` for the input only or for the weight and bias only, on a graph
  recorded once and retained, in the torch format that was faster on that row.
- **Whole networks.** `python -m convx bench --networks` (a run of its own) times the
  convolutions of ResNet-50 (v1.5), VGG-19, ShuffleNet v1 (1x, g=3), GoogLeNet and
  MobileNet-v2 at batch 1 and 224x224, written from their papers' layer tables
  (`convx.bench.networks`). Each distinct layer is timed per library, as the median of
  single calls over seven rounds in shuffled library order (a small layer is called
  repeatedly for 4 ms a round, a large one once), and a network's total is the sum of
  count x median over its layers. convx runs a `Conv2D` with packed weights on NHWC data;
  PyTorch `F.conv2d` on NCHW and channels_last tensors; ONNX Runtime one Conv session per
  layer; OpenVINO (when installed) one compiled single-layer model per layer, with NCHW
  and with NHWC input, in float32 (`INFERENCE_PRECISION_HINT=f32`: on CPUs with bf16 it
  otherwise computes in bf16). Every anchor's output is checked against convx's first.
  `best anchor / convx` divides the fastest anchor's total by convx's (above 1: convx is
  faster); `per-layer best / convx` takes on each layer the fastest anchor there. Only
  convolutions are timed: pooling, normalisation, activations and the layout changes a
  framework makes between layers of a whole model are not.
- **Other figures.** The tiny call is a 1x8x8x1 -> 4 channel 3x3 convolution at one
  thread, where the cost of a call rather than its arithmetic is measured. The denormal
  rows time one layer on normal data and on data where a tenth of the inputs and weights
  are +-1e-40. The bitwise check compares convx's outputs at one and two threads. Extra
  memory is the rise of the peak resident set during one vgg16.conv2_2 call at one thread,
  less the output, each library measured in a fresh process
  (`python -m convx.bench.memory_probe LIB`).

Ratios measured in one run are comparable; absolute times from different runs or machines
are not, and a run on a shared or busy machine moves single cells by 10 % or more. A run
made with a small `--min-time` or on a busy machine is a smoke test of the harness, not a
measurement to quote.

`benchmarks/bench_gemm.py` compares `convx.gemm` with NumPy's matmul; it prints its own
table and is not recorded here.
"""


def load(path: str, schemas: tuple[str, ...] = (report.SCHEMA,)) -> dict[str, Any]:
    with open(path) as fh:
        doc: dict[str, Any] = json.load(fh)
    if doc.get("schema") not in schemas:
        raise SystemExit(f"{path}: not a convx bench result ({' or '.join(map(repr, schemas))} "
                         f"expected, got {doc.get('schema')!r})")
    return doc


def nchw_section(runs: list[tuple[dict[str, Any], str]]) -> list[str]:
    """The runs of benchmarks/bench_nchw.py, newest first."""
    lines = ["## NCHW against torch NCHW", "",
             "`python benchmarks/bench_nchw.py --json benchmarks/results/NAME.json`: convx's NCHW "
             "layout (a `Conv2D` with `layout=\"NCHW\"`, no transposed copy of the input) "
             "against `torch.nn.functional.conv2d` on NCHW and channels_last tensors and "
             "against convx's own NHWC, batch 1, median milliseconds with the libraries "
             "interleaved round by round."]
    for doc, source in runs:
        meta = doc["meta"]
        lines += ["", f"### {meta['date_utc'][:10]}, {meta['cpu_model']}, `{meta['isa']}` "
                      f"(`{Path(source).name}`)", "",
                  f"`{meta['command']}`; convx {meta['convx']}, torch {meta['torch']}.", "",
                  *report.nchw_markdown(doc["results"])]
    return lines


def display_path(path: str) -> str:
    full = Path(path).resolve()
    return str(full.relative_to(ROOT)) if ROOT in full.parents else os.path.basename(path)


def render(paths: list[str]) -> str:
    every = sorted(((load(p, (report.SCHEMA, report.NCHW_SCHEMA)), display_path(p))
                    for p in paths), key=lambda run: run[0]["meta"]["date_utc"], reverse=True)
    runs = [run for run in every if run[0]["schema"] == report.SCHEMA]
    nchw_runs = [run for run in every if run[0]["schema"] == report.NCHW_SCHEMA]
    lines = [
        "<!-- Generated by benchmarks/make_benchmarks_md.py; do not edit. -->",
        "# convx benchmarks",
        "",
        f"This page is generated from the JSON files in `benchmarks/results/` by `{REGENERATE}`;",
        "edit those files or the script, never this page.",
        "",
        "| run | CPU | convx path | caches per core | f32 FMA peak per core "
        "| threads | geometric mean, convx / best anchor "
        "| forward + backward, geometric mean of best torch / convx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for doc, source in runs:
        meta = doc["meta"]
        means = ", ".join(f"{t['geomean_ratio']['convx']:.2f} at {t['threads']}"
                          for t in doc.get("conv") or [] if t["geomean_ratio"]["convx"])
        # Runs from before the forward + backward table have no "backward" key.
        train = ", ".join(f"{t['geomean_ratio']['fwd_bwd']:.2f} at {t['threads']}"
                          for t in doc.get("backward") or [] if t["geomean_ratio"]["fwd_bwd"])
        # Runs from before the cache keys have no meta["caches"]; every run has its peak
        # unless it timed only the denormal rows.
        caches = report.cache_line(meta["caches"]) if meta.get("caches") else "-"
        peak = doc.get("fma_peak") or {}
        peak_text = f"{peak['per_core_gflops']:.0f} Gflop/s" if peak else "-"
        lines.append(f"| {meta['date_utc'][:10]} (`{Path(source).name}`) | {meta['cpu_model']} "
                     f"| `{meta['isa_path']}` | {caches} | {peak_text} "
                     f"| {', '.join(map(str, meta['thread_counts']))} "
                     f"| {means or '-'} | {train or '-'} |")
    lines += ["", METHOD.format(regenerate=REGENERATE).rstrip()]
    for doc, source in runs:
        lines += ["", *report.run_markdown(doc, source)]
        # Runs from before the networks mode have no "networks" key.
        if doc.get("networks"):
            lines += ["", *networks_markdown(doc["networks"])]
    if nchw_runs:
        lines += ["", *nchw_section(nchw_runs)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="JSON files from python -m convx bench --json")
    parser.add_argument("-o", "--output", help="write here instead of standard output")
    parser.add_argument("--summary", action="store_true",
                        help="the README's performance table of one run instead")
    args = parser.parse_args(argv)
    if args.summary:
        if len(args.results) not in (1, 2):
            parser.error("--summary takes one results file, and optionally a networks run")
        docs = [load(path) for path in args.results]
        text = "\n".join(report.summary_markdown(*docs)) + "\n"
    else:
        text = render(args.results)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
