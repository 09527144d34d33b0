"""The training order: a pure function of (seed, epoch); length bucketing keeps every item once."""
import random

import pytest
import torch

from captionkit.tasks import load_task
from captionkit.epoch_order import EpochOrder

from conftest import tiny_caption_recipe


def lengths(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(1, 20) for _ in range(n)]


def padded_cost(batches, lens) -> int:
    return sum(len(b) * max(lens[i] for i in b) for b in batches)


def test_without_bucketing_the_order_is_the_plain_permutation():
    order = EpochOrder(103, 10, seed=3, lengths=lengths(103), bucket=0)
    order.epoch = 2
    perm = torch.randperm(103, generator=torch.Generator().manual_seed(3 * 100003 + 2)).tolist()
    assert list(order) == perm[:100]


@pytest.mark.parametrize("n", [100, 103, 7])
def test_bucketing_keeps_each_item_once_and_cuts_padding(n):
    lens = lengths(n)
    plain, bucketed = EpochOrder(n, 10, seed=1), EpochOrder(n, 10, seed=1, lengths=lens, bucket=4)
    for epoch in range(3):
        plain.epoch = bucketed.epoch = epoch
        a, b = list(plain), list(bucketed)
        assert sorted(a) == sorted(b) and len(b) == len(set(b))  # same items, each once
        assert len(b) == (n // 10) * 10 or (n < 10 and len(b) == n)
        if n >= 40:
            assert padded_cost(bucketed.batches()[:n // 10], lens) < 0.8 * padded_cost(plain.batches()[:n // 10], lens)
    bucketed.epoch = 0
    first = list(bucketed)
    bucketed.epoch = 1
    assert list(bucketed) != first or n < 10          # reshuffled every epoch
    bucketed.epoch = 0
    assert list(bucketed) == first                     # ... and reproducible


def test_bucketed_batches_are_length_sorted_windows_in_shuffled_order():
    lens = lengths(200)
    order = EpochOrder(200, 10, seed=0, lengths=lens, bucket=5)
    batches = order.batches()
    for b in batches:  # each batch comes from one sorted window: lengths within it are close
        assert [lens[i] for i in b] == sorted(lens[i] for i in b)
    firsts = [lens[b[0]] for b in batches]
    assert firsts != sorted(firsts)                    # batch order is shuffled, not by length


def test_resume_start_and_ddp_shares_follow_the_same_batches():
    lens = lengths(120)
    full = EpochOrder(120, 12, seed=5, lengths=lens, bucket=3)
    full.epoch = 4
    batches = full.batches()
    later = EpochOrder(120, 12, seed=5, lengths=lens, bucket=3)
    later.epoch, later.start = 4, 6
    assert list(later) == [i for b in batches[6:10] for i in b]
    ranks = [EpochOrder(120, 12, seed=5, rank=r, world=2, lengths=lens, bucket=3) for r in (0, 1)]
    for r in ranks:
        r.epoch = 4
    shares = [list(r) for r in ranks]
    for s, b in enumerate(batches[:10]):  # rank r takes its contiguous half of every global batch
        assert shares[0][6 * s:6 * s + 6] + shares[1][6 * s:6 * s + 6] == b


def test_caption_task_lengths_follow_its_items(tmp_path):
    task = load_task(data=tiny_caption_recipe(tmp_path, train={"bucket": 2}))
    task.setup()
    lens = task.train_lengths()
    assert len(lens) == len(task.train_dataset())
    for (_, group), n in zip(task.train_set.items, lens):
        assert n == max(len(ids) for ids in group)


def test_bad_bucket_value():
    with pytest.raises(Exception, match="train.bucket"):
        load_task(data=tiny_caption_recipe("x", train={"bucket": -1}))


def test_fit_orders_by_length_when_asked(tmp_path):
    """train.bucket reaches the training order of a run (and 0 leaves it plain)."""
    from captionkit.train import Run

    for bucket in (0, 2):
        task = load_task(data=tiny_caption_recipe(tmp_path, train={"bucket": bucket}))
        task.setup()
        run = Run(task, task.cfg.train, torch.device("cpu"), 0, 1)
        assert run.order.lengths == (task.train_lengths() if bucket else None)
