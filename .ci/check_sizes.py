"""Size limits for the C++ core: no file in csrc/src/ or csrc/include/ over 400 lines, and
no function body in csrc/src/ over 80 lines.

A function's length runs from the line of its body's opening brace to the line of its
closing brace, both included. Functions are found by brace matching over the source with
comments, string literals and preprocessor lines blanked out: a brace block at namespace
scope or directly in a class whose head (the text since the previous `;`, `{` or `}`)
has a parameter list is a function definition, and everything inside it (lambdas, local
classes) counts towards that function. This is a heuristic, not a C++ parser; it is meant
for code written in the project's style.

Prints one line per offender (path:line, what, length). Without --fatal it always exits
0, so CI can show the offenders before the tree passes; with --fatal it exits 1 when
there are any.

    python .ci/check_sizes.py [--fatal] [--root DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80
FILE_DIRS = ("csrc/src", "csrc/include")
FUNCTION_DIRS = ("csrc/src",)
CXX_SUFFIXES = {".cpp", ".cc", ".cxx", ".hpp", ".hh", ".h", ".inl"}

NAMESPACE_HEAD = re.compile(r'^(inline\s+)?namespace\b|^extern\s*"\s*"$')
ACCESS = re.compile(r"^\s*((public|private|protected)\s*:\s*)*")
CLASS_HEAD = re.compile(r"^(template\s*<.*>\s*)?(class|struct|union)\b", re.S)
ENUM_HEAD = re.compile(r"^(typedef\s+)?enum\b")
# `) :` that opens a constructor's member initialiser list (a single colon, not `::`).
INIT_LIST = re.compile(r"\)[^()]*?(?<!:):(?!:)")
CALLEE = re.compile(r"(~?[A-Za-z_]\w*(?:\s*::\s*~?[A-Za-z_]\w*)*"
                    r"(?:\s*operator\s*[^\s(]+)?)\s*(?:<[^()]*>)?\s*\($")


@dataclass
class Offender:
    path: str
    line: int
    what: str
    length: int
    limit: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}: {self.length} lines (limit {self.limit})"


def blank_non_code(text: str) -> str:
    """The source with comments, string and character literals and preprocessor lines
    replaced by spaces; newlines are kept, so offsets map to the same lines."""
    out = list(text)
    i, n = 0, len(text)
    at_line_start = True

    def blank(start: int, end: int) -> None:
        for k in range(start, min(end, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if c == "\n":
            at_line_start = True
            i += 1
            continue
        if at_line_start and c == "#":
            end = i
            while end < n and (text[end] != "\n" or text[end - 1] == "\\"):
                end += 1
            blank(i, end)
            i = end
            continue
        if not c.isspace():
            at_line_start = False
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            blank(i, end)
            i = end
        elif c == "R" and text.startswith('"', i + 1) and (i == 0 or not text[i - 1].isalnum()):
            open_paren = text.find("(", i + 2)
            delim = text[i + 2:open_paren]
            end = text.find(")" + delim + '"', open_paren)
            end = n if end < 0 else end + len(delim) + 2
            blank(i + 2, end - 1)
            i = end
        elif c == '"' or (c == "'" and not (i > 0 and text[i - 1].isalnum())):
            end = i + 1
            while end < n and text[end] != c and text[end] != "\n":
                end += 2 if text[end] == "\\" else 1
            blank(i + 1, end)
            i = end + 1
        else:
            i += 1
    return "".join(out)


def matching_brace(code: str, open_at: int) -> int:
    depth = 0
    for k in range(open_at, len(code)):
        if code[k] == "{":
            depth += 1
        elif code[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    return len(code) - 1


def classify(head: str) -> str:
    """'namespace', 'class', 'function' or 'other' for the text before a `{`."""
    head = ACCESS.sub("", " ".join(head.split()))
    if NAMESPACE_HEAD.search(head):
        return "namespace"
    if ENUM_HEAD.search(head):
        return "other"
    if CLASS_HEAD.search(head) and "(" not in re.sub(r"<.*>|alignas\s*\([^)]*\)", "", head):
        return "class"
    if "(" in head and ")" in head and not head.rstrip().endswith(("=", ",")):
        return "function"
    return "other"


def function_name(head: str) -> str:
    """The name before the parameter list (the first top-level `(` of the head)."""
    flat = " ".join(head.split())
    depth = 0
    for k, ch in enumerate(flat):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "(" and depth == 0:
            found = CALLEE.search(flat[:k + 1])
            if found:
                return re.sub(r"\s+", "", found.group(1)).replace("operator", "operator ")
            break
    return flat[:40]


def long_functions(path: str, text: str) -> list[Offender]:
    code = blank_non_code(text)
    line_of = [0] * (len(code) + 1)
    line = 1
    for k, ch in enumerate(code):
        line_of[k] = line
        if ch == "\n":
            line += 1
    line_of[len(code)] = line

    found: list[Offender] = []
    head_start = 0
    i = 0
    while i < len(code):
        ch = code[i]
        if ch in ";}":
            head_start = i + 1
        elif ch == "{":
            head = code[head_start:i]
            kind = classify(head)
            end = matching_brace(code, i)
            after = code[end + 1:].lstrip()[:1]
            if kind == "function" and INIT_LIST.search(head) and after in (",", "{"):
                # A member's brace initialiser in a constructor's initialiser list.
                i = end + 1
                continue
            if kind in ("namespace", "class"):
                head_start = i + 1
            else:
                if kind == "function":
                    length = line_of[end] - line_of[i] + 1
                    if length > MAX_FUNCTION_LINES:
                        access = ACCESS.match(head)  # skips leading spaces and `public:`
                        sig = head_start + (access.end() if access else 0)
                        found.append(Offender(path, line_of[sig],
                                              f"function {function_name(head)}",
                                              length, MAX_FUNCTION_LINES))
                i = end
                head_start = end + 1
        i += 1
    return found


def check(root: Path) -> list[Offender]:
    offenders: list[Offender] = []
    for top in FILE_DIRS:
        for path in sorted((root / top).rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            text = path.read_text(encoding="utf-8", errors="replace")
            n_lines = len(text.splitlines())
            if n_lines > MAX_FILE_LINES:
                offenders.append(Offender(rel, 1, "file", n_lines, MAX_FILE_LINES))
            if path.suffix in CXX_SUFFIXES and any(rel.startswith(d + "/") for d in FUNCTION_DIRS):
                offenders.extend(long_functions(rel, text))
    return offenders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fatal", action="store_true",
                        help="exit 1 when any file or function is over its limit")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the repository root (default: this script's checkout)")
    args = parser.parse_args()
    offenders = check(args.root)
    for offender in offenders:
        print(offender)
    if not offenders:
        print(f"check_sizes: no file over {MAX_FILE_LINES} lines in {', '.join(FILE_DIRS)}, "
              f"no function over {MAX_FUNCTION_LINES} lines in {', '.join(FUNCTION_DIRS)}")
        return 0
    print(f"check_sizes: {len(offenders)} over the limits"
          + ("" if args.fatal else " (a warning: run with --fatal to fail on them)"))
    return 1 if args.fatal else 0


if __name__ == "__main__":
    sys.exit(main())
