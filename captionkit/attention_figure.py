"""Per-word attention maps of a caption over its image (the figure of Xu et al. 2015, Figures 2-3).

``word_maps`` teacher-forces a caption through an attention captioner and returns, for each word,
the weights the model put on the K x K grid when it predicted that word (the map that shaped z_t
for y_t). ``draw_maps`` renders them with Pillow: the photo, then one panel per word (the photo
dimmed where the model did not look, bilinear-upsampled weights scaled to the panel's maximum) with
the word under it.

Shapes: n words, P = K*K grid positions.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from .errors import UserError

PANEL, LABEL, COLUMNS = 160, 22, 6  # panel side and label height in pixels; panels per row


@torch.no_grad()
def word_maps(model, feats: torch.Tensor, words: list[int], bos: int) -> torch.Tensor:
    """feats (1, ...) of one image, caption ids ``words`` (no BOS/EOS) -> alpha (n, P), one row per word."""
    if not words:
        return torch.zeros(0, 0)
    tokens = torch.tensor([[bos] + words[:-1]], device=feats.device)  # (1, n): input at step t is word t-1
    return model.attention_maps(feats, tokens)[0].float().cpu()  # (n, P)


def _panel(image: Image.Image, alpha: torch.Tensor | None) -> Image.Image:
    """The photo at PANEL x PANEL, brightness scaled by the upsampled map when ``alpha`` (P,) is given."""
    photo = image.convert("RGB").resize((PANEL, PANEL), Image.BILINEAR)
    if alpha is None:
        return photo
    k = math.isqrt(alpha.numel())
    grid = (alpha.view(k, k) / alpha.max().clamp(min=1e-12)).mul(255).byte().numpy()
    mask = Image.fromarray(grid, mode="L").resize((PANEL, PANEL), Image.BILINEAR)
    dark = Image.new("RGB", photo.size, (0, 0, 0))
    return Image.composite(photo, Image.blend(dark, photo, 0.25), mask)  # looked-at areas stay bright


def draw_maps(image: Image.Image, words: list[str], alpha: torch.Tensor) -> Image.Image:
    """One PNG-ready figure: the photo, then one panel per word (``alpha`` (n, P), n = len(words))."""
    if alpha.size(0) != len(words):
        raise ValueError(f"{len(words)} words but {alpha.size(0)} attention maps")
    panels = [("", _panel(image, None))] + [(w, _panel(image, a)) for w, a in zip(words, alpha)]
    cols = min(COLUMNS, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Image.new("RGB", (cols * PANEL, rows * (PANEL + LABEL)), (255, 255, 255))
    draw, font = ImageDraw.Draw(fig), ImageFont.load_default()
    for i, (word, panel) in enumerate(panels):
        x, y = (i % cols) * PANEL, (i // cols) * (PANEL + LABEL)
        fig.paste(panel, (x, y))
        draw.text((x + 4, y + PANEL + 4), word, fill=(0, 0, 0), font=font)
    return fig


def check_attention_model(model) -> None:
    if not hasattr(model, "attention_maps"):
        raise UserError("--attention needs an attention captioner (a checkpoint trained with "
                        "model.arch = 'attention'), not an LRCN captioner or an ensemble")


def write_attention_maps(model, feats: torch.Tensor, captions: list[str], files: list[Path], vocab,
                         out_dir: str | Path) -> list[Path]:
    """One PNG per caption in ``out_dir`` (``<file stem>.png``; ``_2``, ``_3``... on repeated stems):
    the image and one panel per word of its caption.

    ``feats`` (N, ...) are the model's features of the images ``files`` (as its decoders saw them),
    ``captions`` their captions as text; the words are the vocabulary's tokens of each caption.
    """
    from .features import load_image

    check_attention_model(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for i, (caption, file) in enumerate(zip(captions, files)):
        ids = vocab.encode(caption)
        alpha = word_maps(model, feats[i:i + 1], ids, vocab.bos)  # (n, P)
        words = [vocab.tok.id_to_token(w) for w in ids]
        name, k = Path(file).stem, 1
        while out / f"{name}.png" in paths:
            k += 1
            name = f"{Path(file).stem}_{k}"
        paths.append(out / f"{name}.png")
        draw_maps(load_image(file), words, alpha).save(paths[-1])
    return paths
