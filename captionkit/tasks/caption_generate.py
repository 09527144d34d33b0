"""Caption generation for a trained captioner: features or images in, n-best captions out.

Decoding goes through the shared decoders (``captionkit.decoding.decode``) and the model's step
function, batched over images; images are encoded in batches first. Image files are streamed:
each batch is loaded, preprocessed to the CNN's input size and encoded before the next is read, so
memory holds one full-size image at a time, not the whole folder.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from .. import features
from ..decoding import DecodeConfig, decode
from ..errors import UserError
from ..vocab import Vocab

# COCO image files: COCO_val2014_000000391895.jpg (2014) and 000000391895.jpg (2017: 12 digits).
COCO_FILE = re.compile(r"^(?:COCO_[A-Za-z0-9]+_(\d+)|(\d{12}))$")


@torch.inference_mode()
def caption_features(model, feats: torch.Tensor, vocab: Vocab, cfg: DecodeConfig,
                     device: torch.device | str = "cpu", batch_size: int = 100,
                     progress: bool = False) -> list[list[tuple[str, float]]]:
    """CNN features (N, D) -> per image a best-first list of (caption, total log-probability)."""
    out: list[list[tuple[str, float]]] = []
    was_training = model.training
    model.eval()
    starts = range(0, feats.size(0), batch_size)
    for s in tqdm(starts, desc="captioning", disable=not progress, leave=False):
        state = model.init_state(feats[s:s + batch_size].to(device))  # batch-first state
        hyps = decode(model.step, state, cfg, bos=vocab.bos, eos=vocab.eos, unk=vocab.unk)
        out += [[(vocab.decode(h.tokens), float(h.logp)) for h in per] for per in hyps]
    model.train(was_training)
    return out


@torch.inference_mode()
def encode_images(model, load: Callable[[int], Image.Image], n: int, device, batch_size: int = 64,
                  progress: bool = False) -> torch.Tensor:
    """Encode ``n`` images (``load(i)`` -> PIL image) with the model's CNN -> (n, D)."""
    enc = model.encoder
    was_training = enc.training
    enc.eval()
    feats = []
    for s in tqdm(range(0, n, batch_size), desc="encoding", disable=not progress, leave=False):
        batch = torch.stack([enc.preprocess(load(i)) for i in range(s, min(n, s + batch_size))])
        feats.append(enc(batch.to(device)).float())  # (b, D)
    enc.train(was_training)
    return torch.cat(feats) if feats else torch.zeros(0, enc.out_dim)


@torch.inference_mode()
def encode_files(model, files: Sequence[Path], device, batch_size: int = 64, skip_bad: bool = False,
                 on_skip: Callable[[str], None] | None = None, progress: bool = False
                 ) -> tuple[list[Path], torch.Tensor]:
    """Image files -> (the files read, their CNN features (n, D)), one batch of images in memory at a
    time. An unreadable file raises its UserError, or with ``skip_bad`` is reported to ``on_skip``."""
    enc = model.encoder
    was_training = enc.training
    enc.eval()
    kept: list[Path] = []
    feats = []
    with tqdm(total=len(files), desc="encoding", unit="img", disable=not progress, leave=False) as bar:
        for s in range(0, len(files), batch_size):
            batch = []  # preprocessed (C, H, W) tensors: the full-size image is dropped at once
            for f in files[s:s + batch_size]:
                try:
                    batch.append(enc.preprocess(features.load_image(f)))
                except UserError as e:
                    if not skip_bad:
                        raise
                    if on_skip is not None:
                        on_skip(str(e))
                    continue
                kept.append(f)
            if batch:
                feats.append(enc(torch.stack(batch).to(device)).float())  # (b, D)
            bar.update(len(files[s:s + batch_size]))
    enc.train(was_training)
    return kept, (torch.cat(feats) if feats else torch.zeros(0, enc.out_dim))


def coco_image_ids(files: Sequence[Path]) -> list[int | str]:
    """The ``image_id`` of each file in a COCO results file, as ``captionkit score`` keys references:
    COCO file names (``COCO_val2014_000000391895.jpg``, ``000000391895.jpg``) -> the integer id
    (391895) of the COCO annotations and Karpathy ``cocoid``; any other file -> its file name
    (``1000268201_693b08cb0e.jpg``), the key of Flickr8k/30k token files and Karpathy Flickr files.
    Two files with one id (the same name in two folders) are a UserError naming both."""
    ids: list[int | str] = []
    seen: dict[int | str, Path] = {}
    for f in files:
        m = COCO_FILE.match(f.stem)
        iid: int | str = int(m.group(1) or m.group(2)) if m else f.name
        if iid in seen:
            raise UserError(f"--format coco: {seen[iid]} and {f} get the same image_id {iid!r}; "
                            "caption them in separate runs (or use --format json, keyed by path)")
        seen[iid] = f
        ids.append(iid)
    return ids


def caption_source(model, src, vocab: Vocab, cfg: DecodeConfig, device, limit: int = 0,
                   progress: bool = False) -> list[list[tuple[str, float]]]:
    """Caption the first ``limit`` (0 = all) images of an ImageSource."""
    n = min(limit, len(src.items)) if limit else len(src.items)
    feats = encode_images(model, src.image, n, device, progress=progress)
    return caption_features(model, feats, vocab, cfg, device, progress=progress)


def caption_images(model, images: Sequence[Image.Image], vocab: Vocab, cfg: DecodeConfig,
                   device="cpu") -> list[list[tuple[str, float]]]:
    """Caption PIL images."""
    feats = encode_images(model, lambda i: images[i], len(images), device)
    return caption_features(model, feats, vocab, cfg, device)
