"""Checks python/convx/_core.pyi against the compiled convx._core that is installed.

Every callable of the module must have a stub, every stub must exist, and the
parameter names (and their order) must match the ones pybind11 reports in each
function's signature line. Exits non-zero with a list of differences.

    python .ci/check_stubs.py python/convx/_core.pyi
"""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

from convx import _core


def split_top_level(text: str) -> list[str]:
    """Splits on commas that are not inside brackets or quotes."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
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
    if doc.startswith("Overloaded function."):
        raise SystemExit(f"{name}: overloaded in _core; stub it with @overload and extend this")
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


def stub_members(body: list[ast.stmt]) -> dict[str, list[str] | None]:
    """Functions (name -> parameter names) and properties (name -> None) of a stub body."""
    out: dict[str, list[str] | None] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef):
            is_property = any(
                isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list
            )
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            out[node.name] = None if is_property else [a.arg for a in args]
    return out


def compare(
    where: str, stubs: dict[str, list[str] | None], runtime: dict[str, object]
) -> list[str]:
    problems = []
    for name in sorted(set(runtime) - set(stubs)):
        problems.append(f"{where}{name}: in _core but has no stub")
    for name in sorted(set(stubs) - set(runtime)):
        problems.append(f"{where}{name}: stubbed but not in _core")
    for name in sorted(set(stubs) & set(runtime)):
        want = stubs[name]
        obj = runtime[name]
        if isinstance(obj, type):
            continue  # a class: its members are compared on their own
        if isinstance(obj, types.WrapperDescriptorType):
            continue  # a C type slot (LayerBase.__call__): it has no signature to read
        if want is None:
            if not isinstance(obj, property):
                problems.append(f"{where}{name}: the stub has a property, _core does not")
            continue
        got = runtime_params(name, obj)
        if got != want:
            problems.append(f"{where}{name}: _core takes {got}, the stub says {want}")
    return problems


def public(namespace: dict[str, object], keep: tuple[str, ...] = ()) -> dict[str, object]:
    return {
        name: obj
        for name, obj in namespace.items()
        if (callable(obj) or isinstance(obj, property))
        and (name in keep or not (name.startswith("__") and name.endswith("__")))
        and not name.startswith("_pybind11")  # pybind11's cross-module conduit
    }


def main(stub_path: str) -> int:
    tree = ast.parse(Path(stub_path).read_text())
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    stubs: dict[str, list[str] | None] = stub_members(tree.body)
    stubs.update({name: [] for name in classes})  # checked member by member below
    runtime = public(vars(_core))
    problems = compare("", stubs, runtime)
    for name in sorted(set(classes) & set(runtime)):
        # pybind11 puts every class in the module as a type with an __init__ signature.
        members = public(dict(vars(runtime[name])), keep=("__init__", "__call__"))
        init_doc = (getattr(members.get("__init__"), "__doc__", None) or "").lstrip()
        if not init_doc.startswith("__init__("):
            members.pop("__init__", None)  # no constructor bound: made only by _core itself
        problems += compare(f"{name}.", stub_members(classes[name].body), members)
    if not isinstance(getattr(_core, "__version__", None), str):
        problems.append("__version__: missing or not a str")
    for p in problems:
        print(f"check_stubs: {p}")
    n = sum(len(stub_members(c.body)) for c in classes.values()) + len(stubs) - len(classes)
    print(f"check_stubs: {n} stubbed functions and members, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "python/convx/_core.pyi"))
