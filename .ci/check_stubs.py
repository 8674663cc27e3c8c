"""Checks python/convx/_core.pyi against the compiled convx._core that is installed.

Every callable of the module must have a stub, every stub must exist, and the
parameter names (and their order) must match the ones pybind11 reports in each
function's signature line. Exits non-zero with a list of differences.

    python .ci/check_stubs.py python/convx/_core.pyi
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from convx import _core


def split_top_level(text: str) -> list[str]:
    """Splits on commas that are not inside brackets or quotes."""
    parts, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current))
    return parts


def runtime_params(name: str, func: object) -> list[str]:
    """Parameter names from pybind11's first docstring line: `name(a: T, b: U = 1) -> R`."""
    doc = (getattr(func, "__doc__", None) or "").lstrip()
    line = doc.splitlines()[0] if doc else ""
    if not line.startswith(name + "("):
        raise SystemExit(f"{name}: cannot read a signature from its docstring: {line!r}")
    depth, end = 0, -1
    for i, ch in enumerate(line):
        depth += ch == "("
        depth -= ch == ")"
        if ch == ")" and depth == 0:
            end = i
            break
    inner = line[len(name) + 1 : end]
    return [p.split(":")[0].split("=")[0].strip() for p in split_top_level(inner)]


def main(stub_path: str) -> int:
    tree = ast.parse(Path(stub_path).read_text())
    stubs = {
        node.name: [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }
    runtime = {
        name: obj
        for name, obj in vars(_core).items()
        if callable(obj) and not (name.startswith("__") and name.endswith("__"))
    }
    problems = []
    for name in sorted(set(runtime) - set(stubs)):
        problems.append(f"{name}: in _core but has no stub")
    for name in sorted(set(stubs) - set(runtime)):
        problems.append(f"{name}: stubbed but not in _core")
    for name in sorted(set(stubs) & set(runtime)):
        got = runtime_params(name, runtime[name])
        if got != stubs[name]:
            problems.append(f"{name}: _core takes {got}, the stub says {stubs[name]}")
    if not isinstance(getattr(_core, "__version__", None), str):
        problems.append("__version__: missing or not a str")
    for p in problems:
        print(f"check_stubs: {p}")
    print(f"check_stubs: {len(stubs)} stubbed functions, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "python/convx/_core.pyi"))
