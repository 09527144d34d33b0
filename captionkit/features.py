"""Image loading with clear errors, and the on-disk feature cache for frozen encoders.

The cache lives in ``<cache_dir>/<encoder key>/shard_*.pt``; the key hashes the encoder's identity
(backbone, input size, weights digest), so features of different encoders never mix. Each shard holds
``{"ids": [...], "feats": (N, D)}`` and is written atomically as soon as it is computed, so an
interrupted extraction resumes where it stopped and epochs 2..N never rerun the CNN.
"""
from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from . import checkpoint as ckpt_io
from .errors import UserError


def load_image(path: str | Path) -> Image.Image:
    """Open an image as RGB; a missing or corrupt file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UserError(f"corrupt or unreadable image: {path} ({type(e).__name__})") from None


def stored(feats: torch.Tensor) -> torch.Tensor:
    """How features are kept: pooled (N, D) in fp32; grids (N, K*K, D) in fp16 (half the disk and
    memory; consumers cast batches back to fp32)."""
    return feats.detach().cpu().to(torch.float16 if feats.dim() == 3 else torch.float32)


def encoder_key(identity: str) -> str:
    return hashlib.sha1(identity.encode()).hexdigest()[:16]


class FeatureCache:
    """Features by image id for one encoder identity."""

    def __init__(self, cache_dir: str | Path, identity: str):
        self.dir = Path(cache_dir) / encoder_key(identity)
        self.identity = identity
        self.feats: dict[str, torch.Tensor] = {}
        if self.dir.is_dir():
            for shard in sorted(self.dir.glob("shard_*.pt")):
                data = torch.load(shard, map_location="cpu", weights_only=True)
                for i, fid in enumerate(data["ids"]):
                    self.feats[fid] = data["feats"][i]

    def missing(self, ids: Sequence[str]) -> list[str]:
        return [i for i in dict.fromkeys(ids) if i not in self.feats]

    def add(self, ids: list[str], feats: torch.Tensor) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "identity.txt").write_text(self.identity + "\n")
        # a name no other writer can pick: processes sharing one cache never overwrite each other
        name = f"shard_{time.time_ns():020d}_{os.getpid()}_{uuid.uuid4().hex[:8]}.pt"
        feats = stored(feats)
        ckpt_io.save_atomic({"ids": list(ids), "feats": feats.contiguous()}, self.dir / name)
        for i, fid in enumerate(ids):
            self.feats[fid] = feats[i]


def extract_features(encoder, ids: Sequence[str], load: Callable[[str], Image.Image],
                     cache_dir: str | Path | None, batch_size: int = 64,
                     device: torch.device | str = "cpu", skip_bad: bool = False,
                     desc: str = "features", threads: int = 1) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Features for ``ids`` (loading images with ``load(id)``), through the cache when given.

    Images are decoded by ``threads`` background threads while the CNN runs (``prefetched_batches``),
    and the CNN runs through the encoder's ``for_inference`` path when it has one (issue 21).

    Returns ({id: feature (D,)}, ids skipped as unreadable). Without ``skip_bad`` an unreadable
    image raises UserError naming the file; with it, the image is skipped and counted.
    """
    cache = FeatureCache(cache_dir, encoder.identity) if cache_dir else None
    have: dict[str, torch.Tensor] = dict(cache.feats) if cache else {}
    todo = [i for i in dict.fromkeys(ids) if i not in have]
    skipped: list[str] = []
    encoder = encoder.to(device).eval()
    # the encoder's fast inference path (BatchNorm folded, channels_last); any other callable as is
    run = encoder.for_inference() if hasattr(encoder, "for_inference") and todo else encoder
    prepare = lambda fid: encoder.preprocess(load(fid))  # noqa: E731
    with torch.inference_mode(), tqdm(total=len(todo), desc=desc, disable=not todo, leave=False) as bar:
        for chunk, tensors, bad in prefetched_batches(todo, batch_size, prepare, skip_bad, threads):
            skipped += bad
            if chunk:
                feats = stored(run(torch.stack(tensors).to(device)))  # (b, D) or (b, K*K, D)
                if cache:
                    cache.add(chunk, feats)
                have.update({fid: feats[i] for i, fid in enumerate(chunk)})
            bar.update(len(chunk) + len(bad))
    return {i: have[i] for i in ids if i in have}, skipped


def prefetched_batches(ids: Sequence[str], batch_size: int, prepare: Callable[[str], torch.Tensor],
                       skip_bad: bool, threads: int = 1):
    """Yield (ids, tensors, skipped ids) per batch, in order, prepared by ``threads`` background
    threads that stay up to ``threads`` batches ahead of the consumer (image decoding overlaps the CNN;
    PIL and torch release the GIL). An unreadable image raises its UserError at its batch unless
    ``skip_bad``.
    """
    def load_batch(batch: Sequence[str]):
        ok, tensors, bad = [], [], []
        for fid in batch:
            try:
                tensors.append(prepare(fid))
                ok.append(fid)
            except UserError:
                if not skip_bad:
                    raise
                bad.append(fid)
        return ok, tensors, bad

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        pending: deque = deque()
        for start in range(0, len(ids), batch_size):
            pending.append(pool.submit(load_batch, ids[start:start + batch_size]))
            if len(pending) > max(1, threads):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def frozen_features(encoder, ids: Sequence[str], load, cache_dir, batch_size: int = 64,
                    device: torch.device | str = "cpu") -> torch.Tensor | None:
    """Features (N, D) of ``ids`` through the feature caches when every CNN is frozen, else None.

    A single encoder uses its cache; an EnsembleEncoder uses each member CNN's own cache.
    """
    from .models.ensemble import EnsembleEncoder

    parts = list(encoder.encoders) if isinstance(encoder, EnsembleEncoder) else [encoder]
    if not cache_dir or not all(p.frozen for p in parts):
        return None
    out = []
    for p in parts:
        feats, _ = extract_features(p, ids, load, cache_dir, batch_size, device)
        out.append(torch.stack([feats[i] for i in ids]))  # (N, D_p)
    return torch.cat(out, dim=1)
