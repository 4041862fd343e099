"""Zero-copy collation of the batches ``LeRobotDataset.__getitems__`` builds.

``__getitems__`` decodes and gathers a whole batch into contiguous tensors, then hands torch's
DataLoader the per-item dicts it expects: views into those tensors. torch's ``default_collate`` would
stack the views back into new tensors, copying every frame of the batch a second time (and evicting
the decoders' working set from the CPU caches, which costs more than the copy itself). Items are
therefore :class:`Sample` dicts that remember their batch, and ``default_collate`` is taught (through
its documented ``default_collate_fn_map`` extension point) to return that batch when it is handed
exactly the items of one ``__getitems__`` call, unmodified and in order, in the main process. Anything
else (and everything in DataLoader workers, whose batches go through shared memory) is collated the
usual way, so results are always those of stacking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


class _Origin:
    """The batch a group of samples was cut from."""

    __slots__ = ("batch", "size")

    def __init__(self, batch: dict[str, Any], size: int):
        self.batch = batch
        self.size = size


class Sample(dict):
    """An item of a LeRobot dataset (a plain dict to its users) that knows the batch it belongs to.
    Any change to the dict detaches it from that batch."""

    __slots__ = ("_origin", "_position")

    def _detach(self) -> None:
        self._origin = None

    def __setitem__(self, key, value) -> None:
        self._detach()
        super().__setitem__(key, value)

    def __delitem__(self, key) -> None:
        self._detach()
        super().__delitem__(key)

    def update(self, *args, **kwargs) -> None:
        self._detach()
        super().update(*args, **kwargs)

    def pop(self, *args):
        self._detach()
        return super().pop(*args)

    def popitem(self):
        self._detach()
        return super().popitem()

    def setdefault(self, key, default=None):
        self._detach()
        return super().setdefault(key, default)

    def clear(self) -> None:
        self._detach()
        super().clear()

    def __reduce__(self):
        # Pickled (e.g. sent between processes) as the plain dict it stands for, without its batch.
        return (dict, (dict(self),))


def samples_of(batch: dict[str, Any], size: int) -> list[Sample]:
    """Cuts a batch (tensors with a leading batch axis, or lists) into `size` Sample items."""
    origin = _Origin(batch, size)
    per_key = {
        key: value.unbind(0) if isinstance(value, torch.Tensor) else value for key, value in batch.items()
    }
    samples = []
    for position in range(size):
        sample = Sample({key: values[position] for key, values in per_key.items()})
        sample._origin = origin
        sample._position = position
        samples.append(sample)
    return samples


def collate_samples(samples: Sequence[Sample], *, collate_fn_map: dict[type, Callable] | None = None) -> dict:
    """default_collate's rule for Sample items: their batch if they are one whole batch, unmodified
    and in order; otherwise a key-by-key collation, as for any mapping."""
    origin = getattr(samples[0], "_origin", None)
    if (
        origin is not None
        # In a DataLoader worker the batch must be built in shared memory to cross to the main
        # process, which stacking does; handing over ordinary tensors would copy them there anyway
        # (and torch's worker then aborts at exit after such copies).
        and torch.utils.data.get_worker_info() is None
        and len(samples) == origin.size
        and all(getattr(s, "_origin", None) is origin and s._position == i for i, s in enumerate(samples))
    ):
        return dict(origin.batch)
    from torch.utils.data._utils.collate import collate

    return {key: collate([s[key] for s in samples], collate_fn_map=collate_fn_map) for key in samples[0]}


def _register() -> None:
    try:
        from torch.utils.data._utils.collate import default_collate_fn_map
    except ImportError:  # a torch without the extension point: items are stacked as usual
        return
    default_collate_fn_map.setdefault(Sample, collate_samples)


_register()
