"""The error classes of the C++ core and of dexloop.errors are what errors.toml, their one table,
gives; the table's own consistency rules refuse damage; and native failures arrive in Python as the
table's classes."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import pytest

import dexloop.errors
from dexloop import _core

pytest.importorskip("tomllib")  # the generator reads TOML with Python 3.11's tomllib

ROOT = Path(__file__).resolve().parent.parent


def load_generator():
    spec = importlib.util.spec_from_file_location("generate_errors", ROOT / "tools/generate_errors.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


generator = load_generator()


def test_the_written_files_are_what_the_table_gives():
    assert generator.main(["--check"]) == 0


def test_dexloop_errors_holds_exactly_the_table_with_its_bases():
    table = generator.load_table()
    defined = {
        name: value
        for name, value in vars(dexloop.errors).items()
        if inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == "dexloop.errors"
    }
    assert sorted(defined) == sorted(entry.name for entry in table) == sorted(dexloop.errors.__all__)
    for entry in table:
        bases = [base.__name__ for base in defined[entry.name].__bases__]
        assert bases == [entry.parent or "Exception", *entry.builtins], entry.name
        assert " ".join(defined[entry.name].__doc__.split()) == entry.doc


def test_native_failures_arrive_as_the_tables_classes(tmp_path):
    native = {entry.name for entry in generator.load_table() if entry.native}
    assert {"DexloopError", "BusError", "VideoDecodeError", "ServoError"} <= native
    with pytest.raises(dexloop.errors.VideoDecodeError, match="missing.mp4"):
        _core.video.VideoDecoder(str(tmp_path / "missing.mp4"))
    bus = _core.bus.ServoBus(str(tmp_path / "no-such-port"), "feetech")
    with pytest.raises(dexloop.errors.BusError, match="no-such-port") as caught:
        bus.open()
    assert type(caught.value) is dexloop.errors.BusError


def write_table(tmp_path, text):
    path = tmp_path / "errors.toml"
    path.write_text(text)
    return path


ROOT_ENTRY = '[[error]]\nname = "DexloopError"\nnative = true\ndoc = "Base."\n'


@pytest.mark.parametrize(
    ("entries", "complaint"),
    [
        ('[[error]]\nname = "A"\nparent = "Missing"\ndoc = "x"\n', "not defined above it"),
        ('[[error]]\nname = "A"\nparent = "DexloopError"\ndoc = "x"\n' * 2, "defined twice"),
        ('[[error]]\nname = "A"\ndoc = "x"\n', "needs a parent"),
        (
            '[[error]]\nname = "A"\nparent = "DexloopError"\nbuiltins = ["Exit"]\ndoc = "x"\n',
            "unknown builtins",
        ),
        ('[[error]]\nname = "A"\nparent = "DexloopError"\ndoc = ""\n', "needs a name and a doc"),
        ('[[error]]\nname = "A"\nparent = "DexloopError"\ndoc = "x"\ncolour = 1\n', "colour"),
        (
            '[[error]]\nname = "A"\nparent = "DexloopError"\ndoc = "x"\n'
            '[[error]]\nname = "B"\nparent = "A"\nnative = true\ndoc = "x"\n',
            "its parent A is not",
        ),
        ("[[error]\n", "errors.toml"),
    ],
)
def test_a_damaged_table_is_refused_naming_the_entry(tmp_path, entries, complaint):
    path = write_table(tmp_path, ROOT_ENTRY + entries)
    with pytest.raises(generator.ErrorTableError, match=complaint):
        generator.load_table(path)
