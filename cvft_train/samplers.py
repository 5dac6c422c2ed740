"""Samplers that stay correct under ``torchrun``: each rank draws its own part of one shared order.

Example:
    >>> s = WeightedDistributedSampler([1.0, 1.0, 8.0, 8.0], num_samples=4, rank=0, world=2, seed=0)
    >>> len(s), len(list(s))
    (2, 2)
    >>> list(ShardSampler(5, rank=1, world=2))
    [1, 3]
"""

from __future__ import annotations

from typing import Iterator, Sequence


class WeightedDistributedSampler:
    """Class-balanced sampling (with replacement) split across ranks: every rank draws the same
    ``num_samples`` indices from the same seeded generator and keeps every ``world``-th one, so an
    epoch is ``num_samples`` images in all, not ``num_samples`` per rank. ``set_epoch`` changes the
    draw each epoch, as :class:`torch.utils.data.DistributedSampler` does."""

    def __init__(self, weights: Sequence[float], num_samples: int, rank: int, world: int, seed: int = 0):
        self.weights = list(weights)
        self.num_samples = num_samples
        self.rank, self.world, self.seed, self.epoch = rank, world, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(range(self.rank, self.num_samples, self.world))

    def __iter__(self) -> Iterator[int]:
        import torch

        g = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(torch.as_tensor(self.weights, dtype=torch.double), self.num_samples, True,
                                  generator=g)
        return iter(drawn[self.rank::self.world].tolist())


class ShardSampler:
    """Indices ``rank, rank + world, ...`` of a dataset: evaluation split across ranks with no
    padding, so counts summed over ranks are exact."""

    def __init__(self, size: int, rank: int, world: int):
        self.indices = range(rank, size, world)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)
