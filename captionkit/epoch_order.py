"""The training data order: which items each optimisation step sees, a function of (seed, epoch).

``EpochOrder`` is the DataLoader's sampler: a seeded permutation per epoch, optionally length-bucketed
(``train.bucket``), split evenly over DDP processes, and able to start mid-epoch (``start``) so a
resumed run skips exactly the batches already seen.
"""
from __future__ import annotations

import torch

from .errors import UserError


class EpochOrder(torch.utils.data.Sampler):
    """Global batches as a function of (seed, epoch); each rank takes its contiguous share.

    Global batch b holds perm[b*B:(b+1)*B]; rank r of W takes items [r*B/W, (r+1)*B/W) of it, so a
    W-process step sees exactly the global batch a 1-process step would. ``start`` skips batches.
    With ``lengths`` and ``bucket`` = k > 0, each window of k*B shuffled items is sorted by length
    before it is cut into batches and the batches are shuffled: batches of similar lengths (less
    padding), still every item once per epoch and still a pure function of (seed, epoch).
    """

    def __init__(self, n: int, batch: int, seed: int, rank: int = 0, world: int = 1,
                 lengths: list[int] | None = None, bucket: int = 0):
        if batch % world:
            raise UserError(f"train.batch_size={batch} must be divisible by the {world} DDP processes")
        if lengths is not None and len(lengths) != n:
            raise ValueError(f"EpochOrder: {len(lengths)} lengths for {n} items")
        self.n, self.batch, self.seed, self.rank, self.world = n, batch, seed, rank, world
        self.lengths, self.bucket = (lengths if bucket else None), bucket
        self.epoch, self.start = 0, 0

    def steps(self) -> int:
        return max(1, self.n // self.batch)  # the incomplete last batch is dropped

    def batches(self) -> list[list[int]]:
        """This epoch's global batches (the last may be incomplete)."""
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        B = self.batch
        if self.lengths is None:
            return [perm[i:i + B] for i in range(0, self.n, B)]
        full = self.steps() * B if self.n >= B else self.n
        window = self.bucket * B
        out = []
        for w in range(0, full, window):  # stable sort: ties keep their shuffled order
            chunk = sorted(perm[w:min(w + window, full)], key=self.lengths.__getitem__)
            out += [chunk[i:i + B] for i in range(0, len(chunk), B)]
        out = [out[i] for i in torch.randperm(len(out), generator=g).tolist()]
        return out + ([perm[full:]] if full < self.n else [])

    def __iter__(self):
        batches = self.batches()
        share = self.batch // self.world
        for b in range(self.start, self.steps()):
            chunk = batches[b]
            yield from chunk[self.rank * share:(self.rank + 1) * share] if len(chunk) == self.batch \
                else chunk[self.rank::self.world]

    def __len__(self) -> int:
        return (self.steps() - self.start) * (self.batch // self.world)
