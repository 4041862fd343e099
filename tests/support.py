"""Helpers the tests import (``from support import LEROBOT_DATA, ...``): the shipped test data's
folders and assertions. Kept out of conftest.py, which several test folders have (a module named
``conftest`` would be whichever of them was imported first)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
LEROBOT_DATA = DATA / "lerobot"
LEROBOT_V21_DATA = DATA / "lerobot_v21"


def writable_copy(source: Path, parent: Path) -> Path:
    """A copy of dataset folder `source` in `parent` (same name) that tests may change: the shipped
    test data may be read-only."""
    target = parent / source.name
    shutil.copytree(source, target)
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` (relative path) with its SHA-256: what "left untouched" compares."""
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_same_values(actual: dict, expected: dict, atol: dict[str, float] | None = None) -> None:
    """Same keys in the same order, tensors equal in dtype, shape and every value (within ``atol[key]``
    where given), other values equal."""
    import torch  # here, not at the top: the bus and simulator tests run where torch is not installed

    assert list(actual) == list(expected)
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            tolerance = (atol or {}).get(key, 0.0)
            torch.testing.assert_close(
                actual[key], value, rtol=0, atol=tolerance, msg=lambda m, key=key: f"{key}: {m}"
            )
        else:
            assert actual[key] == value, key


def requires_ffmpeg() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        shutil.which("ffmpeg") is None, reason="the ffmpeg tool makes this test's videos"
    )
