"""dexloop's reading classes in LeRobot 0.6.1's place, for by-hand comparisons (never used by dexloop's tests).

Importing this module makes ``LeRobotDataset(...)`` and ``LeRobotDatasetMetadata(...)`` construct
dexloop's readers wherever LeRobot's code or tests name them (``lerobot.datasets.lerobot_dataset``,
``.dataset_metadata``, the package itself, and every loaded module that imported the names; call
``swap()`` again after importing more). LeRobot keeps writing: ``LeRobotDataset.create`` / ``.resume``
and ``LeRobotDatasetMetadata.create`` are LeRobot's own, run with LeRobot's classes in place. Downloads
dexloop makes go through the ``snapshot_download`` / ``get_safe_version`` that LeRobot's modules hold at
that moment, so stubs of the Hub apply. Nothing else of LeRobot changes.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import lerobot.datasets  # noqa: F401 - loads every module that imports the names
import lerobot.datasets.dataset_metadata as lerobot_metadata_module
import lerobot.datasets.lerobot_dataset as lerobot_dataset_module

import dexloop.hub as dexloop_hub
from dexloop.datasets.lerobot_dataset import LeRobotDataset as DexloopDataset
from dexloop.datasets.metadata import LeRobotDatasetMetadata as DexloopMetadata

LEROBOT_DATASET = lerobot_dataset_module.LeRobotDataset
LEROBOT_METADATA = lerobot_metadata_module.LeRobotDatasetMetadata


@contextlib.contextmanager
def lerobot_classes() -> Iterator[None]:
    """LeRobot's own classes under their names, for the duration of a write call."""
    swapped = {module: dict(vars(module)) for module in _modules_naming_the_classes()}
    for module in swapped:
        _rebind(module, {LeRobotDataset: LEROBOT_DATASET, LeRobotDatasetMetadata: LEROBOT_METADATA})
    try:
        yield
    finally:
        for module in swapped:
            _rebind(module, {LEROBOT_DATASET: LeRobotDataset, LEROBOT_METADATA: LeRobotDatasetMetadata})


def _writing(method):
    def call(*args, **kwargs):
        with lerobot_classes():
            return method(*args, **kwargs)

    call.__name__ = method.__name__
    call.__doc__ = method.__doc__
    return staticmethod(call)


class LeRobotDatasetMetadata(DexloopMetadata):
    """dexloop's metadata reader; ``create`` is LeRobot's."""

    create = _writing(LEROBOT_METADATA.create)


class LeRobotDataset(DexloopDataset):
    """dexloop's dataset reader; ``create`` and ``resume`` are LeRobot's writer."""

    create = _writing(LEROBOT_DATASET.create)
    resume = _writing(LEROBOT_DATASET.resume)


def _hub_download(
    repo_id, *, revision, local_dir, allow_patterns=None, ignore_patterns=None, what="", token=None
):
    """dexloop's download through the functions LeRobot's modules hold now (the tests' stubs)."""
    module = lerobot_metadata_module if allow_patterns == "meta/" else lerobot_dataset_module
    if revision and module.is_valid_version(revision):
        revision = module.get_safe_version(repo_id, revision)
    kwargs = {"allow_patterns": allow_patterns, "ignore_patterns": ignore_patterns}
    if local_dir is None:
        path = module.snapshot_download(
            repo_id, repo_type="dataset", revision=revision, cache_dir=module.HF_LEROBOT_HUB_CACHE, **kwargs
        )
        return Path(path), revision
    local_dir.mkdir(parents=True, exist_ok=True)
    module.snapshot_download(repo_id, repo_type="dataset", revision=revision, local_dir=local_dir, **kwargs)
    return local_dir, revision


def _modules_naming_the_classes() -> list:
    names = []
    for name, module in list(sys.modules.items()):
        if not name.startswith(("lerobot", "tests")) or module is None:
            continue
        values = vars(module).values()
        if any(
            v is c
            for v in values
            for c in (LEROBOT_DATASET, LEROBOT_METADATA, LeRobotDataset, LeRobotDatasetMetadata)
        ):
            names.append(module)
    return names


def _rebind(module, mapping: dict) -> None:
    for attribute, value in list(vars(module).items()):
        for old, new in mapping.items():
            if value is old:
                setattr(module, attribute, new)


def swap() -> None:
    for module in _modules_naming_the_classes():
        _rebind(module, {LEROBOT_DATASET: LeRobotDataset, LEROBOT_METADATA: LeRobotDatasetMetadata})
    dexloop_hub.download = _hub_download


swap()
