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
from collections.abc import Callable, Sequence
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
                     desc: str = "features") -> tuple[dict[str, torch.Tensor], list[str]]:
    """Features for ``ids`` (loading images with ``load(id)``), through the cache when given.

    Returns ({id: feature (D,)}, ids skipped as unreadable). Without ``skip_bad`` an unreadable
    image raises UserError naming the file; with it, the image is skipped and counted.
    """
    cache = FeatureCache(cache_dir, encoder.identity) if cache_dir else None
    have: dict[str, torch.Tensor] = dict(cache.feats) if cache else {}
    todo = [i for i in dict.fromkeys(ids) if i not in have]
    skipped: list[str] = []
    encoder = encoder.to(device).eval()
    with torch.inference_mode(), tqdm(total=len(todo), desc=desc, disable=not todo, leave=False) as bar:
        for start in range(0, len(todo), batch_size):
            chunk, tensors = [], []
            for fid in todo[start:start + batch_size]:
                try:
                    tensors.append(encoder.preprocess(load(fid)))
                    chunk.append(fid)
                except UserError:
                    if not skip_bad:
                        raise
                    skipped.append(fid)
            if chunk:
                feats = stored(encoder(torch.stack(tensors).to(device)))  # (b, D) or (b, K*K, D)
                if cache:
                    cache.add(chunk, feats)
                have.update({fid: feats[i] for i, fid in enumerate(chunk)})
            bar.update(len(todo[start:start + batch_size]))
    return {i: have[i] for i in ids if i in have}, skipped
