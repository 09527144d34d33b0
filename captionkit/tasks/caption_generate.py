"""Caption generation for a trained captioner: features or images in, n-best captions out.

Decoding goes through the shared decoders (``captionkit.decoding.decode``) and the model's step
function, batched over images; images are encoded in batches first.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from tqdm import tqdm

from ..decoding import DecodeConfig, decode
from ..vocab import Vocab


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
