"""Image loading with clear errors, and the on-disk feature cache for frozen encoders.

``load_image`` gives 8-bit RGB by the image's real range (16-bit and float images are scaled, not
clipped to white or black) and refuses decompression bombs (PIL's limit ``Image.MAX_IMAGE_PIXELS``;
its warning is made an error in this process) with a one-line UserError naming the file.

The cache lives in ``<cache_dir>/<encoder key>/shard_*.pt``; the key hashes the encoder's identity
(backbone, input size, weights digest), so features of different encoders never mix. Each shard holds
``{"ids": [...], "feats": (N, D), "stamps": [...]}`` and is written atomically as soon as it is
computed, so an interrupted extraction resumes where it stopped and epochs 2..N never rerun the CNN.
A stamp says what the image was (``file_stamp``: absolute path, size and mtime, as the video frame
cache keys its files; 0.19 s for the 7,000 Flickr8k files where hashing their bytes takes 0.77 s,
``eval/bench_cache_stamps.py``): a cached feature is used only while its image's stamp is unchanged,
so another dataset with the same file names, or an image fixed in place, is encoded again. An
unreadable shard is removed with a one-line warning and its features are computed again.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from . import checkpoint as ckpt_io
from .errors import UserError


def load_image(path: str | Path) -> Image.Image:
    """Open an image as 8-bit RGB (``to_rgb``); a missing, corrupt or huge file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    if not any(f[0] == "error" and f[2] is Image.DecompressionBombWarning for f in warnings.filters):
        # here, not at import, so that it holds wherever warning filters were reset (tests, notebooks)
        warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    try:
        with Image.open(path) as img:
            return to_rgb(img, path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UserError(f"{path}: refused as a possible decompression bomb ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UserError(f"corrupt or unreadable image: {path} ({type(e).__name__})") from None


def to_rgb(img: Image.Image, path: Path) -> Image.Image:
    """8-bit RGB by the image's real range: 16-bit integers / 257; other integer images outside 0..65535
    and float images min..max -> 0..255, except floats within [0, 1] (x 255). PIL's own ``convert``
    would clip 16-bit values to white and floats to black. Non-finite pixels are a UserError."""
    if img.mode.startswith("I;16"):
        return Image.fromarray((np.asarray(img, dtype=np.float32) / 257).round().astype(np.uint8)).convert("RGB")
    if img.mode not in ("I", "F"):
        return img.convert("RGB")
    a = np.asarray(img, dtype=np.float64)  # (H, W)
    if not np.isfinite(a).all():
        raise UserError(f"{path}: a {img.mode}-mode image with NaN or infinite pixels")
    lo, hi = float(a.min()), float(a.max())
    if img.mode == "I" and lo >= 0 and hi <= 65535:
        a = a / 257
    elif img.mode == "F" and lo >= 0 and hi <= 1:
        a = a * 255
    else:
        a = (a - lo) * (255 / (hi - lo)) if hi > lo else np.clip(a, 0, 255)
    return Image.fromarray(a.round().astype(np.uint8)).convert("RGB")


def file_stamp(path: str | Path) -> str:
    """What a file is, for caches: its absolute path, size and mtime (a missing file never matches)."""
    try:
        st = os.stat(path)
    except OSError:
        return f"{os.path.abspath(path)}|missing"
    return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"


def stored(feats: torch.Tensor) -> torch.Tensor:
    """How features are kept: pooled (N, D) in fp32; grids (N, K*K, D) in fp16 (half the disk and
    memory; consumers cast batches back to fp32)."""
    return feats.detach().cpu().to(torch.float16 if feats.dim() == 3 else torch.float32)


def encoder_key(identity: str) -> str:
    return hashlib.sha1(identity.encode()).hexdigest()[:16]


class FeatureCache:
    """Features by image id for one encoder identity, each with the stamp of the image it came from
    (the newest shard wins); ``valid`` gives those whose stamps still match."""

    def __init__(self, cache_dir: str | Path, identity: str):
        self.dir = Path(cache_dir) / encoder_key(identity)
        self.identity = identity
        self.feats: dict[str, torch.Tensor] = {}
        self.stamps: dict[str, str | None] = {}
        if self.dir.is_dir():
            for shard in sorted(self.dir.glob("shard_*.pt")):
                self._read(shard)

    def _read(self, shard: Path) -> None:
        try:
            data = torch.load(shard, map_location="cpu", weights_only=True)
            ids, feats = list(data["ids"]), data["feats"]
            stamps = list(data.get("stamps") or [None] * len(ids))  # shards before stamps: never valid
            if not isinstance(feats, torch.Tensor) or not len(ids) == len(feats) == len(stamps):
                raise ValueError("ids, feats and stamps disagree")
        except Exception as e:  # noqa: BLE001  (truncated, corrupt, or not a shard: recompute its features)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
            print(f"warning: feature cache: removed the unreadable {shard} ({first}); its features will "
                  "be computed again", file=sys.stderr)
            try:
                shard.unlink(missing_ok=True)
            except OSError:
                pass  # a read-only cache: the shard is skipped each time, and said so
            return
        for fid, feat, stamp in zip(ids, feats, stamps):
            self.feats[fid], self.stamps[fid] = feat, stamp

    def valid(self, stamps: dict[str, str | None]) -> dict[str, torch.Tensor]:
        """Cached features of the ids in ``stamps`` ({id: stamp}) whose stamp matches (None: any)."""
        return {i: self.feats[i] for i, s in stamps.items()
                if i in self.feats and (s is None or self.stamps.get(i) == s)}

    def missing(self, ids: Sequence[str]) -> list[str]:
        return [i for i in dict.fromkeys(ids) if i not in self.feats]

    def add(self, ids: list[str], feats: torch.Tensor, stamps: Sequence[str | None] | None = None) -> None:
        # a name no other writer can pick: processes sharing one cache never overwrite each other
        name = f"shard_{time.time_ns():020d}_{os.getpid()}_{uuid.uuid4().hex[:8]}.pt"
        feats = stored(feats)
        stamps = list(stamps) if stamps is not None else [None] * len(ids)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "identity.txt").write_text(self.identity + "\n")
            ckpt_io.save_atomic({"ids": list(ids), "feats": feats.contiguous(), "stamps": stamps}, self.dir / name)
        except OSError as e:
            raise UserError(f"feature cache {self.dir}: cannot write it ({e.strerror or type(e).__name__}); point "
                            "the cache at a writable folder or turn it off (encoder.cache = false)") from None
        for i, fid in enumerate(ids):
            self.feats[fid], self.stamps[fid] = feats[i], stamps[i]


def extract_features(encoder, ids: Sequence[str], load: Callable[[str], Image.Image],
                     cache_dir: str | Path | None, batch_size: int = 64,
                     device: torch.device | str = "cpu", skip_bad: bool = False,
                     desc: str = "features", threads: int = 2,
                     stamp: Callable[[str], str | None] | None = None) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Features for ``ids`` (loading images with ``load(id)``), through the cache when given.

    ``stamp(id)`` says what the image is (``file_stamp`` of its file; ``ImageSource.stamp``): a
    cached feature is reused only under the same stamp. Without it, ids alone key the cache (images
    that are functions of their ids, e.g. in memory).

    Images are decoded by ``threads`` background threads while the CNN runs (``prefetched_batches``),
    and the CNN runs through the encoder's ``for_inference`` path when it has one (issue 21).

    Returns ({id: feature (D,)}, ids skipped as unreadable). Without ``skip_bad`` an unreadable
    image raises UserError naming the file; with it, the image is skipped and counted.
    """
    cache = FeatureCache(cache_dir, encoder.identity) if cache_dir else None
    stamps = {i: stamp(i) if stamp and cache else None for i in dict.fromkeys(ids)}
    have: dict[str, torch.Tensor] = cache.valid(stamps) if cache else {}
    todo = [i for i in stamps if i not in have]
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
                    cache.add(chunk, feats, [stamps[i] for i in chunk])
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
                    device: torch.device | str = "cpu", stamp=None) -> torch.Tensor | None:
    """Features (N, D) of ``ids`` through the feature caches when every CNN is frozen, else None.
    ``stamp`` as in ``extract_features``.

    A single encoder uses its cache; an EnsembleEncoder uses each member CNN's own cache.
    """
    from .models.ensemble import EnsembleEncoder

    parts = list(encoder.encoders) if isinstance(encoder, EnsembleEncoder) else [encoder]
    if not cache_dir or not all(p.frozen for p in parts):
        return None
    out = []
    for p in parts:
        feats, _ = extract_features(p, ids, load, cache_dir, batch_size, device, stamp=stamp)
        out.append(torch.stack([feats[i] for i in ids]))  # (N, D_p) or a grid (N, P_p, C_p)
    # several CNNs: flattened side by side, as EnsembleEncoder.forward gives them
    return torch.cat([o.float().flatten(1) for o in out], dim=1) if len(out) > 1 else out[0]
