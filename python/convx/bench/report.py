"""Figures derived from the benchmark's results, and their text and Markdown renderings.

The results are the JSON document that `python -m convx bench --json PATH` writes (see
`convx.bench.conv.run`). The bench's own printout and benchmarks/make_benchmarks_md.py both
render from here, so the terminal and BENCHMARKS.md always show the same figures.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from convx.bench.suite import ANCHORS, BACKWARD_LIBRARIES, LIBRARIES

SCHEMA = "convx-bench/1"
# The JSON of benchmarks/bench_nchw.py: convx NCHW against torch NCHW and convx NHWC.
NCHW_SCHEMA = "convx-nchw/1"
Doc = dict[str, Any]


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def conv_table(threads: int, layers: list[dict[str, Any]], seconds: dict[str, dict[str, float]],
               peak: float) -> dict[str, Any]:
    """One thread count's results: per layer the median seconds and the rate (giga-flops a
    second) of each library, convx's % of the FMA peak and its ratio to the fastest anchor;
    and the geometric means."""
    rows = []
    ratios: dict[str, list[float]] = {"convx": [], "convx_fn": []}
    for layer in layers:
        secs = seconds.get(layer["name"])
        if secs is None:
            continue
        gflops = {lib: layer["gflop"] / t for lib, t in secs.items()}
        anchors = {a: gflops[a] for a in ANCHORS if a in gflops}
        best = max(anchors, key=lambda a: anchors[a]) if anchors else None
        row: dict[str, Any] = {
            "layer": layer["name"], "gflop": layer["gflop"], "seconds": secs, "gflops": gflops,
            "pct_peak": 100 * gflops["convx"] / (peak * threads) if peak > 0 else None,
            "best_anchor": best, "ratio": None, "ratio_fn": None,
        }
        if best is not None:
            for lib, key in (("convx", "ratio"), ("convx_fn", "ratio_fn")):
                if lib in gflops:
                    row[key] = gflops[lib] / anchors[best]
                    ratios[lib].append(row[key])
        rows.append(row)
    means = {lib: geomean(v) if v else None for lib, v in ratios.items()}
    return {"threads": threads, "rows": rows, "geomean_ratio": means}


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, fmt)


def conv_markdown(table: dict[str, Any], heading: str = "###") -> list[str]:
    """The rate table (giga-flops a second) of one thread count and its geometric-mean
    line."""
    threads = table["threads"]
    columns = ["convx_fn", "torch", "torch_cl", "ort", "numpy"]
    lines = [f"{heading} {threads} thread{'s' if threads > 1 else ''} (Gflop/s, median)", "",
             "| layer | GFLOP | convx Conv2D | % peak | "
             + " | ".join(LIBRARIES[c] for c in columns) + " | convx / best anchor |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in table["rows"]:
        g = row["gflops"]
        pct = "-" if row["pct_peak"] is None else f"{row['pct_peak']:.0f}%"
        cells = [_num(g.get(c), ".1f") for c in columns]
        lines.append(f"| {row['layer']} | {row['gflop']:.3f} | {g['convx']:.1f} | {pct} | "
                     + " | ".join(cells) + f" | {_num(row['ratio'], '.2f')} |")
    means = table["geomean_ratio"]
    lines += ["", f"geometric mean of convx / best anchor: {_num(means['convx'], '.2f')} "
                  f"(Conv2D), {_num(means['convx_fn'], '.2f')} (conv2d)"]
    return lines


def backward_table(threads: int, layers: list[dict[str, Any]],
                   results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One thread count's forward + backward results (see convx.bench.backward): per layer
    the median seconds of each timing, the faster torch format and the ratios
    torch / convx (above 1 when convx is faster) of the step, of dX and of dW; and their
    geometric means."""
    rows = []
    ratios: dict[str, list[float]] = {"fwd_bwd": [], "dx": [], "dw": []}
    for layer in layers:
        res = results.get(layer["name"])
        if res is None:
            continue
        secs: dict[str, float] = res["seconds"]
        best = res["torch_variant"]
        row: dict[str, Any] = {
            # Forward, dX and dW each do the forward's multiply-adds.
            "layer": layer["name"], "gflop": 3 * layer["gflop"], "seconds": secs,
            "best_torch": best, "ratio": None, "ratio_dx": None, "ratio_dw": None,
        }
        for key, mine, theirs in (("fwd_bwd", "convx", best), ("dx", "convx_dx", "torch_dx"),
                                  ("dw", "convx_dw", "torch_dw")):
            if theirs in secs and mine in secs:
                ratio = secs[theirs] / secs[mine]
                row["ratio" if key == "fwd_bwd" else f"ratio_{key}"] = ratio
                ratios[key].append(ratio)
        rows.append(row)
    means = {key: geomean(v) if v else None for key, v in ratios.items()}
    return {"threads": threads, "rows": rows, "geomean_ratio": means}


def backward_markdown(table: dict[str, Any], heading: str = "###") -> list[str]:
    """The forward + backward table of one thread count and its geometric-mean line."""
    threads = table["threads"]
    lab = BACKWARD_LIBRARIES
    lines = [f"{heading} Forward + backward, {threads} thread{'s' if threads > 1 else ''} "
             "(ms, median)", "",
             f"| layer | {lab['convx']} fwd+bwd | {lab['torch']} fwd+bwd | "
             f"{lab['torch_cl']} fwd+bwd | best torch / convx | {lab['convx_dx']} | "
             f"{lab['convx_dw']} | {lab['torch_dx']} | {lab['torch_dw']} |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in table["rows"]:
        ms = {k: 1e3 * v for k, v in row["seconds"].items()}
        fmt = "" if row["best_torch"] is None else f" ({LIBRARIES[row['best_torch']]})"
        lines.append(
            f"| {row['layer']} | {_num(ms.get('convx'), '.3f')} | {_num(ms.get('torch'), '.3f')}"
            f" | {_num(ms.get('torch_cl'), '.3f')} | {_num(row['ratio'], '.2f')} | "
            f"{_num(ms.get('convx_dx'), '.3f')} | {_num(ms.get('convx_dw'), '.3f')} | "
            f"{_num(ms.get('torch_dx'), '.3f')}{fmt} | {_num(ms.get('torch_dw'), '.3f')}{fmt} |")
    means = table["geomean_ratio"]
    lowest = min((r for r in table["rows"] if r["ratio"] is not None),
                 key=lambda r: r["ratio"], default=None)
    low = "" if lowest is None else f"; lowest {lowest['ratio']:.2f} ({lowest['layer']})"
    lines += ["", "best torch / convx divides the faster torch format's time by convx's (above 1: "
                  "convx is faster). dX is the input gradient alone, dW the weight and bias "
                  "gradients alone, torch's in the format named.",
              f"geometric mean of best torch / convx: {_num(means['fwd_bwd'], '.2f')} "
              f"(forward + backward{low}), {_num(means['dx'], '.2f')} (dX), "
              f"{_num(means['dw'], '.2f')} (dW)"]
    return lines


def size_text(n: int) -> str:
    """Bytes as the largest binary unit that divides them: 49152 -> "48 KiB"."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def cache_line(caches: dict[str, Any]) -> str:
    """One core's data caches, from convx.cpu_info() or a run's meta["caches"]: e.g.
    "L1d 48 KiB, L2 1 MiB, L3 32 MiB (shared by 2) [cpuid]"."""
    def level(size: int, shared_by: int) -> str:
        if not size:
            return "none"
        return size_text(size) + (f" (shared by {shared_by})" if shared_by > 1 else "")

    return (f"L1d {size_text(caches['l1d'])}, L2 {level(caches['l2'], caches['l2_shared_by'])}, "
            f"L3 {level(caches['l3'], caches['l3_shared_by'])} [{caches['cache_source']}]")


def blocking_line(blocking: dict[str, Any]) -> str:
    """A GEMM kernel and its cache blocks, from cpu_info()["gemm_blocking"][dtype]."""
    return (f"{blocking['kernel']}: MC {blocking['mc']}, KC {blocking['kc']}, "
            f"NC {blocking['nc']}, packed B <= {size_text(blocking['packed_b_bytes'])}")


def _start_peak_text(meta: dict[str, Any]) -> str | None:
    peaks = meta.get("fma_peak_at_start")
    if not peaks:
        return None
    return ", ".join(f"{t} thread{'s' if t != '1' else ''} {g:.0f} Gflop/s"
                     for t, g in peaks.items())


def header_lines(doc: Doc) -> list[str]:
    """What machine a run measured: CPU, kernel path and its GEMM blocking, caches, and the
    f32 FMA peak sampled at the start. Runs recorded before these keys existed show what
    they have."""
    meta = doc["meta"]
    lines = [f"CPU: {meta['cpu_model']} ({meta['machine']}, {meta['usable_cpus']} usable CPUs)",
             f"convx {meta['versions']['convx']}, path {meta['isa_path']}"]
    blocking = (meta.get("gemm_blocking") or {}).get("float32")
    if blocking:
        lines[-1] += f"; GEMM {blocking_line(blocking)}"
    if meta.get("caches"):
        lines.append(f"caches per core: {cache_line(meta['caches'])}")
    start = _start_peak_text(meta)
    if start:
        lines.append(f"f32 FMA peak at the start: {start}")
    return lines


def peak_lines(doc: Doc) -> list[str]:
    peak = doc["fma_peak"]
    samples = peak["per_core_samples"]
    lines = [f"f32 FMA peak of one core, the fastest of {len(samples)} samples: "
             f"{peak['per_core_gflops']:.0f} Gflop/s (slowest {min(samples):.0f})"]
    for threads, rates in peak["concurrent_gflops"].items():
        lines.append(f"FMA peak of {threads} threads at once, sampled before each layer: "
                     f"{min(rates):.0f}-{max(rates):.0f} Gflop/s (median "
                     f"{statistics.median(rates):.0f}; {threads} full cores give about "
                     f"{int(threads) * peak['per_core_gflops']:.0f})")
    return lines


def tiny_lines(tiny: dict[str, float]) -> list[str]:
    return (["tiny-call overhead (1x8x8x1 -> 4, 3x3, pad 1; median of interleaved batches):"]
            + [f"  {name:13s} {us:6.2f} us" for name, us in tiny.items()])


def denormal_lines(times: dict[str, float]) -> list[str]:
    lines = ["denormal data (Conv2D 28x28x128 -> 128, 3x3, 1 thread; 10% of weights and inputs "
             "+-1e-40; median ms):"]
    for name, ms in times.items():
        base = times["torch normal" if name.startswith("torch") else "convx normal"]
        lines.append(f"  {name:30s} {ms:8.3f} ms  {ms / base:6.2f}x its normal time")
    return lines


def bitwise_line(check: dict[str, Any]) -> str:
    same: dict[str, bool] = check["layers"]
    bad = [name for name, ok in same.items() if not ok]
    counts = " and ".join(str(t) for t in check["threads"])
    return (f"bitwise identical at {counts} threads: {len(same) - len(bad)}/{len(same)} layers"
            + (f" (differs: {', '.join(bad)})" if bad else ""))


def memory_lines(memory: dict[str, float | None]) -> list[str]:
    return (["extra peak memory of one vgg16.conv2_2 call beyond its output (1 thread):"]
            + [f"  {lib:13s} " + ("not available" if mib is None else f"{mib:6.2f} MiB")
               for lib, mib in memory.items()])


def text_sections(doc: Doc) -> list[list[str]]:
    """What the bench prints after its run, section by section, from the results."""
    sections = []
    if doc.get("conv"):
        sections.append(peak_lines(doc))
        for table in doc["conv"]:
            sections.append(conv_markdown(table))
    for table in doc.get("backward") or []:
        sections.append(backward_markdown(table))
    for key, render in (("tiny_call_us", tiny_lines), ("denormal_ms", denormal_lines),
                        ("extra_memory_mib", memory_lines)):
        if doc.get(key) is not None:
            sections.append(render(doc[key]))
    if doc.get("bitwise_identical") is not None:
        sections.append([bitwise_line(doc["bitwise_identical"])])
    return sections


def _meta_table(meta: dict[str, Any]) -> list[str]:
    v = meta["versions"]
    others = ", ".join(f"{k} {v[k]}" for k in ("numpy", "torch", "onnxruntime", "python")
                       if v.get(k))
    rows = [
        ("CPU", f"{meta['cpu_model']} ({meta['machine']}, {meta['usable_cpus']} usable CPUs)"),
        ("convx path", f"`{meta['isa_path']}` (available: {', '.join(meta['isa_available'])})"),
        ("caches per core", cache_line(meta["caches"]) if meta.get("caches") else "not recorded"),
        ("GEMM blocking (f32)", blocking_line(meta["gemm_blocking"]["float32"])
         if meta.get("gemm_blocking") else "not recorded"),
        ("f32 FMA peak at the start", _start_peak_text(meta) or "not recorded"),
        ("threads", ", ".join(str(t) for t in meta["thread_counts"])),
        ("date (UTC)", meta["date_utc"]),
        ("versions", f"convx {v['convx']}; {others}"),
        ("command", f"`{meta['command']}`"),
        ("environment", ", ".join(f"`{k}={val}`" for k, val in meta["environment"].items())
         or "no CONVX_* or thread variables set"),
        ("timing", f"min_time {meta['method']['min_time_s']} s, at least "
                   f"{meta['method']['min_batches']} batches per library, medians"),
    ]
    return ["| | |", "|---|---|", *(f"| {k} | {val} |" for k, val in rows)]


def run_markdown(doc: Doc, source: str) -> list[str]:
    """One results file as a section of BENCHMARKS.md."""
    meta = doc["meta"]
    lines = [f"## {meta['cpu_model']}, `{meta['isa_path']}` path, {meta['date_utc'][:10]}", "",
             f"From `{source}`.", "", *_meta_table(meta)]
    if doc.get("conv"):
        for line in peak_lines(doc):
            lines += ["", line + "."]
        for table in doc["conv"]:
            lines += ["", *conv_markdown(table)]
    for table in doc.get("backward") or []:
        lines += ["", *backward_markdown(table)]
    if doc.get("bitwise_identical") is not None:
        lines += ["", bitwise_line(doc["bitwise_identical"]) + "."]
    for key, render in (("tiny_call_us", tiny_lines), ("denormal_ms", denormal_lines),
                        ("extra_memory_mib", memory_lines)):
        if doc.get(key) is not None:
            lines += ["", "```", *render(doc[key]), "```"]
    return lines


def summary_markdown(doc: Doc, networks: Doc | None = None) -> list[str]:
    """The one performance table of README.md: convx's layer against the fastest anchor,
    and, given a run of the networks mode, the whole networks' row."""
    meta, tables = doc["meta"], doc.get("conv") or []
    heads = " | ".join(f"{t['threads']} thread{'s' if t['threads'] > 1 else ''}" for t in tables)
    lines = [f"`{meta['command']}` on {meta['cpu_model']}, `{meta['isa_path']}` path, "
             f"{meta['date_utc'][:10]}; NHWC float32, medians, all libraries in one process.",
             "",
             "| convx `Conv2D` / fastest of PyTorch (NCHW, channels_last) and ONNX Runtime | "
             + heads + " |",
             "|---|" + "---|" * len(tables)]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row(f"geometric mean over the {len(doc['layers'])} layers",
        [f"{_num(t['geomean_ratio']['convx'], '.2f')}x" for t in tables])
    lowest = [min((r for r in t["rows"] if r["ratio"] is not None),
                  key=lambda r: r["ratio"], default=None) for t in tables]
    row("lowest layer", [f"{r['ratio']:.2f}x ({r['layer']})" if r else "-" for r in lowest])
    backward = {t["threads"]: t for t in doc.get("backward") or []}
    if backward:
        cells = []
        for t in tables:
            bt = backward.get(t["threads"])
            mean = bt["geomean_ratio"]["fwd_bwd"] if bt else None
            cells.append(f"{mean:.2f}x over {len(bt['rows'])} layers"
                         if bt and mean is not None else "-")
        row("forward + backward: time of the faster torch (NCHW, channels_last) / convx's, "
            "geometric mean", cells)
    tiny = doc.get("tiny_call_us") or {}
    if "convx Conv2D" in tiny:
        others = ", ".join(f"{k} {v:.1f} µs" for k, v in tiny.items() if k != "convx Conv2D")
        lines.append(f"| tiny layer call, 1x8x8x1 -> 4, 1 thread | {tiny['convx Conv2D']:.2f} µs "
                     f"({others}) |" + " |" * (len(tables) - 1))
    memory = doc.get("extra_memory_mib") or {}
    if memory.get("convx") is not None:
        others = ", ".join(f"{k} {v:.2f}" for k, v in memory.items()
                           if k != "convx" and v is not None)
        lines.append(f"| extra memory of one vgg16.conv2_2 call | {memory['convx']:.2f} MiB "
                     f"({others}) |" + " |" * (len(tables) - 1))
    if networks and networks.get("networks"):
        by_threads = {t["threads"]: t for t in networks["networks"]["tables"]}
        cells = []
        for t in tables:
            nt = by_threads.get(t["threads"])
            fast = nt.get("geomean_speedup_fast") if nt else None
            cells.append("-" if nt is None else f"{_num(nt['geomean_speedup'], '.2f')}x"
                         + (f" ({fast:.2f}x with `algorithm=\"fast\"`)" if fast else ""))
        names = ", ".join(d["title"].split(" (")[0]
                          for d in networks["networks"]["definitions"])
        row(f"whole networks' conv layers ({names}; batch 1, 224x224): fastest of PyTorch, "
            "ONNX Runtime and OpenVINO / convx, geometric mean", cells)
    return lines


def nchw_markdown(results: list[dict[str, Any]]) -> list[str]:
    """The table of benchmarks/bench_nchw.py: per (layer, dtype, threads) the median
    milliseconds and the ratios torch NCHW / convx NCHW and convx NCHW / convx NHWC."""
    lines = ["| layer | dtype | threads | convx NCHW | convx NHWC | torch NCHW | torch CL "
             "| torch NCHW / convx NCHW | convx NCHW / NHWC |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ms = {k: v * 1e3 for k, v in r["seconds"].items()}
        lines.append(
            f"| {r['layer']} | {r['dtype']} | {r['threads']} | {ms['convx NCHW']:.3f} "
            f"| {ms['convx NHWC']:.3f} | {ms['torch NCHW']:.3f} "
            f"| {ms['torch channels_last']:.3f} "
            f"| {ms['torch NCHW'] / ms['convx NCHW']:.2f} "
            f"| {ms['convx NCHW'] / ms['convx NHWC']:.2f} |")
    return lines
