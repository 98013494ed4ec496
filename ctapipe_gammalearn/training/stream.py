"""Batches from the memory-mapped cache, in a seeded order shared by all ranks.

A `BatchStream` is what the training loop iterates: one per input stream
(labelled simulation now; an unlabelled target-domain stream can be a second
one). Order comes from a `DistributedSampler` seeded with ``seed`` and the
epoch, so a run, a resumed run and every DDP rank agree on it.
"""

import numpy as np
import torch
from torch.utils.data import DistributedSampler

__all__ = ["BatchStream", "LABEL_KEYS"]

LABEL_KEYS = ("log10_energy", "fov_offset", "impact", "particle")


class BatchStream:
    """Iterable over dict batches of ``cache`` rows ``indices``.

    Each batch holds float32 ``image``/``peak_time`` tensors, and unless
    ``labelled=False`` the labels (``particle`` as int64) and ``weight``
    (cached event weight times ``class_weights[particle]``).
    """

    def __init__(
        self,
        cache,
        indices,
        batch_size=64,
        shuffle=True,
        seed=0,
        rank=0,
        world_size=1,
        augmentation=None,
        class_weights=None,
        labelled=True,
        drop_last=False,
    ):
        self.cache = cache
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.augmentation = augmentation
        self.labelled = labelled
        self.class_weights = None if class_weights is None else np.asarray(class_weights, np.float32)
        self.seed = int(seed)
        self.drop_last = drop_last
        # pads by repeating a few rows when len(indices) is not a multiple of world_size
        self.sampler = DistributedSampler(
            range(len(self.indices)), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed
        )
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = int(epoch)
        self.sampler.set_epoch(epoch)

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def n_samples(self) -> int:
        return len(self.sampler)

    def _generator(self):
        gen = torch.Generator()
        gen.manual_seed(self.seed * 1_000_003 + self.epoch * 1009 + self.sampler.rank + 17)
        return gen

    def fetch(self, rows):
        """One batch dict for cache ``rows`` (sorted for sequential reads)."""
        rows = np.sort(np.asarray(rows, dtype=np.int64))
        batch = {
            "image": torch.from_numpy(np.asarray(self.cache["image"][rows], dtype=np.float32)),
            "peak_time": torch.from_numpy(np.asarray(self.cache["peak_time"][rows], dtype=np.float32)),
        }
        if self.labelled:
            for key in LABEL_KEYS:
                batch[key] = torch.from_numpy(np.asarray(self.cache[key][rows]))
            batch["particle"] = batch["particle"].long()
            weight = np.asarray(self.cache["weight"][rows], dtype=np.float32)
            if self.class_weights is not None:
                weight = weight * self.class_weights[np.asarray(self.cache["particle"][rows], dtype=np.int64)]
            batch["weight"] = torch.from_numpy(weight)
        return batch

    def order(self):
        """This rank's cache rows of the current epoch, in the order they are read."""
        return self.indices[np.fromiter(iter(self.sampler), dtype=np.int64, count=len(self.sampler))]

    def __iter__(self):
        order = self.order()
        generator = self._generator() if self.augmentation is not None and self.augmentation.active else None
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            if self.drop_last and len(rows) < self.batch_size:
                break
            batch = self.fetch(rows)
            if generator is not None:
                batch["image"], batch["peak_time"] = self.augmentation(batch["image"], batch["peak_time"], generator)
            yield batch
