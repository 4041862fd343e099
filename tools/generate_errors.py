"""Writes dexloop's exception classes from their one table, errors.toml.

Two files come out of it: the C++ core's ``cpp/include/dexloop/error.hpp`` (the classes marked
``native``, each knowing the name of its Python class, which is how the extension's translator in
``bindings/errors.cpp`` raises the right one without a list of its own) and the Python module
``python/dexloop/errors.py``. Run it after editing the table; ``--check`` (CI, ``tools/dev.sh lint``)
fails when either file differs from what the table gives.

    python tools/generate_errors.py [--check]
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "errors.toml"
CPP_HEADER = ROOT / "cpp/include/dexloop/error.hpp"
PYTHON_MODULE = ROOT / "python/dexloop/errors.py"

# The Python exceptions a dexloop class may also be (so that it is caught where LeRobot's would be).
BUILTINS = {
    "ConnectionError",
    "FileExistsError",
    "FileNotFoundError",
    "IndexError",
    "KeyError",
    "OSError",
    "PermissionError",
    "RuntimeError",
    "TimeoutError",
    "TypeError",
    "ValueError",
}

PYTHON_DOC = """\
Exceptions raised by dexloop.

The native core raises these same classes (dexloop._core maps its C++ exceptions onto them), so one
``except`` clause covers a failure wherever it was detected. Messages name the file, key, index or
timestamp involved.

Written by tools/generate_errors.py from errors.toml, the one table of dexloop's errors: edit the
table, not this file."""


class ErrorTableError(ValueError):
    """errors.toml is malformed or inconsistent."""


@dataclass
class ErrorClass:
    name: str
    doc: str
    parent: str | None = None
    builtins: list[str] = field(default_factory=list)
    native: bool = False
    cpp_name: str | None = None

    @property
    def cpp(self) -> str:
        return self.cpp_name or self.name


def load_table(path: Path = TABLE) -> list[ErrorClass]:
    """The table's classes in its order, checked: unique names, parents defined before their
    children, one root, known builtins, native classes whose parents are native."""
    try:
        entries = tomllib.loads(path.read_text())["error"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as error:
        raise ErrorTableError(f"{path}: {error}") from error
    classes: dict[str, ErrorClass] = {}
    for number, entry in enumerate(entries, 1):
        unknown = set(entry) - {"name", "doc", "parent", "builtins", "native", "cpp_name"}
        if unknown or "name" not in entry or not entry.get("doc", "").strip():
            raise ErrorTableError(
                f"{path}: entry {number} needs a name and a doc and has only known keys "
                f"(unknown: {sorted(unknown)})"
            )
        error_class = ErrorClass(
            name=entry["name"],
            doc=" ".join(entry["doc"].split()),
            parent=entry.get("parent"),
            builtins=list(entry.get("builtins", [])),
            native=bool(entry.get("native", False)),
            cpp_name=entry.get("cpp_name"),
        )
        name = error_class.name
        if name in classes:
            raise ErrorTableError(f"{path}: {name} is defined twice")
        if error_class.parent is None and classes:
            raise ErrorTableError(f"{path}: {name} needs a parent (only the first class is the root)")
        if error_class.parent is not None and error_class.parent not in classes:
            raise ErrorTableError(f"{path}: {name}'s parent {error_class.parent} is not defined above it")
        if not set(error_class.builtins) <= BUILTINS:
            raise ErrorTableError(
                f"{path}: {name}: unknown builtins {sorted(set(error_class.builtins) - BUILTINS)}"
            )
        if error_class.native and error_class.parent and not classes[error_class.parent].native:
            raise ErrorTableError(f"{path}: {name} is native but its parent {error_class.parent} is not")
        classes[name] = error_class
    return list(classes.values())


def python_module(classes: list[ErrorClass]) -> str:
    lines = ['"""' + PYTHON_DOC + '\n"""', "", "from __future__ import annotations", ""]
    for error_class in classes:
        bases = [error_class.parent or "Exception", *error_class.builtins]
        doc = textwrap.wrap(error_class.doc, width=100 - 4, initial_indent='"""')
        doc[-1] += '"""'
        body = ["    " + line for line in doc]
        if "KeyError" in error_class.builtins:
            body += [
                "",
                "    def __str__(self) -> str:  # KeyError would quote the message",
                '        return str(self.args[0]) if self.args else ""',
            ]
        lines += ["", f"class {error_class.name}({', '.join(bases)}):", *body, ""]
    names = sorted(error_class.name for error_class in classes)
    lines += ["", "__all__ = [", *(f'    "{name}",' for name in names), "]", ""]
    return "\n".join(lines)


def cpp_header(classes: list[ErrorClass]) -> str:
    native = [error_class for error_class in classes if error_class.native]
    by_name = {error_class.name: error_class for error_class in classes}
    lines = [
        "// Exceptions thrown at dexloop's API boundaries, each knowing the name of its class in",
        "// dexloop.errors, which the Python extension raises for it (bindings/errors.cpp). Real-time",
        "// paths (bus transactions, the control loop's tick) return statuses instead; the Python",
        "// edge turns those into these classes.",
        "//",
        "// Written by tools/generate_errors.py from errors.toml, the one table of dexloop's errors:",
        "// edit the table, not this file.",
        "#pragma once",
        "",
        "#include <stdexcept>",
        "",
        "namespace dexloop {",
    ]
    for error_class in native:
        comment = textwrap.wrap(error_class.doc, width=100 - 3)
        lines += ["", *("// " + line for line in comment)]
        if error_class.parent is None:
            lines += [
                f"class {error_class.cpp} : public std::runtime_error {{",
                " public:",
                "  using std::runtime_error::runtime_error;",
                f'  virtual const char* python_class() const noexcept {{ return "{error_class.name}"; }}',
                "};",
            ]
        else:
            parent = by_name[error_class.parent].cpp
            lines += [
                f"class {error_class.cpp} : public {parent} {{",
                " public:",
                f"  using {parent}::{parent};",
                f'  const char* python_class() const noexcept override {{ return "{error_class.name}"; }}',
                "};",
            ]
    lines += ["", "}  // namespace dexloop", ""]
    return "\n".join(_wrap_long_cpp_lines(lines))


def _wrap_long_cpp_lines(lines: list[str]) -> list[str]:
    """clang-format's layout of the one-line overrides that pass its 100 columns."""
    wrapped = []
    for line in lines:
        if len(line) > 100 and "python_class() const noexcept" in line:
            head, body = line.split("{ ", 1)
            wrapped += [head + "{", "    " + body.removesuffix(" }"), "  }"]
        else:
            wrapped.append(line)
    return wrapped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a written file is not current")
    args = parser.parse_args(argv)
    classes = load_table()
    outputs = {CPP_HEADER: cpp_header(classes), PYTHON_MODULE: python_module(classes)}
    stale = [path for path, text in outputs.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is not what errors.toml gives: run tools/generate_errors.py")
        return 1 if stale else 0
    for path in stale:
        path.write_text(outputs[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
