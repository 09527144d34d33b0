"""Image captioning (LRCN section 5) as a task for ``train.fit``.

Data sources: the built-in synthetic scenes, COCO caption annotations, Karpathy ``dataset_*.json``
and Flickr8k token files (``data.source``). Every (image, caption) pair is one training example;
validation captions the validation images with ``decode`` and scores them with the fast, exact
BLEU/CIDEr-D (document frequencies over the whole validation split). Best checkpoint: CIDEr.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..decoding import DecodeConfig
from ..encoders import EncoderConfig, build_image_encoder
from ..errors import UserError
from ..features import extract_features
from ..models.attention_captioner import AttentionCaptioner
from ..models.captioner import CaptionModelConfig, Captioner
from ..models.cnn_split import split_encoder
from ..train import TrainConfig
from ..vocab import SPECIALS, Vocab, pad_captions
from .base import Task
from .caption_data import CaptionDataConfig, ImageSource, load_split
from .caption_scst import SCSTConfig, reward_scorer, scst_loss, training_forward


@dataclass
class CaptionConfig:
    task: str = "caption"
    data: CaptionDataConfig = field(default_factory=CaptionDataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    model: CaptionModelConfig = field(default_factory=CaptionModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    scst: SCSTConfig = field(default_factory=SCSTConfig)  # self-critical training (off by default)


class PairDataset(Dataset):
    """Training items: (visual, [caption ids, ...], image index); visual = cached feature or image.

    One caption per item (image, caption pairs), or all of an image's captions per item when
    ``data.group_captions`` is set, so that a fine-tuned CNN encodes each image once per batch.
    """

    def __init__(self, source: ImageSource, items: list[tuple[int, list[list[int]]]],
                 feats: torch.Tensor | None, preprocess):
        self.source, self.items, self.feats, self.preprocess = source, items, feats, preprocess
        self.memo: dict[int, torch.Tensor] = {}  # synthetic images: rendered and preprocessed once

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        img, caps = self.items[i]
        if self.feats is not None:
            return self.feats[img], caps, img
        if not self.source.synthetic:
            return self.preprocess(self.source.image(img)), caps, img
        if img not in self.memo:
            self.memo[img] = self.preprocess(self.source.image(img))
        return self.memo[img], caps, img


def weights_identity(encoder) -> str:
    """An encoder identity from its weights (for checkpoints that did not record one)."""
    import hashlib
    h = hashlib.sha1()
    for name, t in sorted(encoder.net.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return f"{encoder.cfg.name}:{encoder.cfg.image_size}:weights:{h.hexdigest()[:16]}"


class CaptionTask(Task):
    name = "caption"
    config_class = CaptionConfig
    selection_metric = "CIDEr"

    def __init__(self, cfg: CaptionConfig, extra: dict | None = None):
        super().__init__(cfg, extra)
        self.trained = extra is not None        # rebuilt from a checkpoint: weights come from it
        self.vocab = Vocab.from_json(self.extra["vocab"]) if "vocab" in self.extra else None
        self._encoder = None
        self._upper = None                      # trainable upper CNN blocks (model.attention.tune_from)
        self.reward = None                      # the reward (CIDEr-D [+ METEOR]) when scst.samples > 0
        self.scst_now = False                   # is this epoch self-critical (scst.active)?

    def load_extra(self, extra: dict) -> None:
        super().load_extra(extra)
        self.vocab = Vocab.from_json(self.extra["vocab"])

    # ------------------------------------------------------------------ data
    def encoder(self):
        """The image encoder; its ``identity`` is the feature-cache key and must match training's."""
        if self._encoder is None:
            root = self.cfg.data.root or None
            known = self.extra.get("encoder_identity", "") if self.trained else ""
            if known:  # rebuilt from a checkpoint: its weights come from the state dict, no file needed
                self._encoder = build_image_encoder(self.cfg.encoder, root, load_weights=False)
                self._encoder.identity = known
            else:
                try:
                    self._encoder = build_image_encoder(self.cfg.encoder, root)
                except UserError:
                    if not self.trained:
                        raise
                    # an older checkpoint whose weights file is not here: identity from the weights
                    self._encoder = build_image_encoder(self.cfg.encoder, root, load_weights=False)
                    self._encoder.identity = ""
                self.extra["encoder_identity"] = self._encoder.identity
            self._check_attention()
            if self._tune_from():  # partial tuning: the lower CNN is the (cached) encoder
                self._encoder, self._upper = split_encoder(self._encoder, self._tune_from())
        return self._encoder

    def _tune_from(self) -> int:
        return self.cfg.model.attention.tune_from if self.cfg.model.arch == "attention" else 0

    def _check_attention(self) -> None:
        if self.cfg.model.arch == "attention" and self.cfg.encoder.pool != "grid":
            raise UserError(f"model.arch = 'attention' needs encoder.pool = 'grid' (a K x K feature map), "
                            f"got encoder.pool = {self.cfg.encoder.pool!r}")

    def setup(self, rank: int = 0, world: int = 1) -> None:
        d = self.cfg.data
        self.train_src, self.val_src = load_split(d, "train"), load_split(d, "val")
        if d.val_limit:  # validation uses only these: do not extract features for the rest
            self.val_src = ImageSource("val", self.val_src.items[:d.val_limit], self.val_src.synthetic)
        if self.vocab is None:
            self.vocab = Vocab.build((c for item in self.train_src.items for c in item.captions), d.min_count)
            if len(self.vocab) <= len(SPECIALS):  # every word would be <unk>: a model of nothing
                raise UserError(f"data.min_count={d.min_count}: no word of the training captions occurs that often")
            self.extra["vocab"] = self.vocab.to_json()
        enc = self.encoder()
        if rank == 0 and enc.report:
            print(f"encoder {self.cfg.encoder.name}: {enc.report}", flush=True)
        self.train_feats = self.val_feats = None
        if enc.frozen:
            self.train_feats, self.val_feats = self._features(self.train_src, rank, world), \
                self._features(self.val_src, rank, world)
        items = []
        scst = self.cfg.scst.samples > 0  # self-critical: one item per image, rewards from all captions
        self.reward = reward_scorer([it.captions for it in self.train_src.items], self.vocab,
                                    self.cfg.scst.meteor) if scst else None
        for i, item in enumerate(self.train_src.items):
            caps = [self.vocab.encode(c)[:d.max_len] for c in item.captions[:d.captions_per_image or None]]
            caps = [ids for ids in caps if ids]
            if (d.group_captions or scst) and caps:
                items.append((i, caps))
            else:
                items += [(i, [ids]) for ids in caps]
        if not items:
            raise UserError("no training captions: check data.source and its files")
        self.train_set = PairDataset(self.train_src, items, self.train_feats, enc.preprocess)

    def _features(self, src: ImageSource, rank: int, world: int) -> torch.Tensor:
        """(N, D) features of a split's images, through the on-disk cache (rank 0 extracts first)."""
        enc, ecfg = self.encoder(), self.cfg.encoder
        cache = ecfg.cache_dir if ecfg.cache else None
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if world > 1 and cache and rank != 0:
            torch.distributed.barrier()
        feats, skipped = extract_features(enc, src.ids(), src.image_by_id, cache, ecfg.batch_size, device,
                                          skip_bad=False, desc=f"features {src.split}", stamp=src.stamp)
        if world > 1 and cache and rank == 0:
            torch.distributed.barrier()
        return torch.stack([feats[i] for i in src.ids()])  # (N, D)

    def train_dataset(self) -> Dataset:
        return self.train_set

    def data_source(self) -> str:
        d = self.cfg.data
        return "built-in synthetic data (no files)" if d.source == "synth" else f"{d.source} from {d.root or '.'}"

    def data_sizes(self) -> dict[str, int]:
        return {"train images": len(self.train_src.items), "train items": len(self.train_set),
                "val images": len(self.val_src.items)}

    def train_lengths(self) -> list[int]:
        return [max(len(ids) for ids in group) for _, group in self.train_set.items]

    def collate(self, items):
        visual = torch.stack([v for v, _, _ in items])  # (B_img, D) or (B_img, 3, S, S)
        caps = [ids for _, group, _ in items for ids in group]
        index = torch.tensor([b for b, (_, group, _) in enumerate(items) for _ in group])  # (B_cap,)
        inp, tgt = pad_captions(caps, self.vocab)  # (B_cap, T) each
        images = torch.tensor([img for _, _, img in items])  # (B_img,) training-image index
        return {"visual": visual, "index": index, "inp": inp, "tgt": tgt, "images": images}

    # ------------------------------------------------------------------ model
    def build_model(self) -> Captioner | AttentionCaptioner:
        if self.vocab is None:
            raise RuntimeError("CaptionTask.build_model needs the vocabulary: call setup() first")
        if self.cfg.model.arch == "attention":
            enc = self.encoder()
            upper = self._upper if self._tune_from() else None
            return AttentionCaptioner(self.cfg.model, enc, len(self.vocab), self.vocab.pad, upper)
        return Captioner(self.cfg.model, self.encoder(), len(self.vocab), self.vocab.pad)

    def loaded(self, model: Captioner) -> None:
        """After a checkpoint's weights are in: an encoder of unknown identity gets its weights' digest."""
        if not model.encoder.identity:
            model.encoder.identity = weights_identity(model.encoder)
            self.extra["encoder_identity"] = model.encoder.identity

    def param_groups(self, model, lr: float) -> list[dict]:
        upper = self._upper if self._tune_from() else None  # the attention captioner's trainable upper CNN blocks
        cnn = list(model.encoder.parameters()) + (list(upper.parameters()) if upper is not None else [])
        enc = [p for p in cnn if p.requires_grad]
        enc_ids = {id(p) for p in enc}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in enc_ids]
        groups = [{"params": rest, "lr": lr}]
        if enc:
            groups.append({"params": enc, "lr": self.cfg.encoder.lr or lr})
        return groups

    def begin_epoch(self, epoch: int) -> None:
        self.scst_now = self.cfg.scst.active(epoch)

    def loss(self, model, batch, device):
        if self.scst_now:
            return scst_loss(model, batch, device, self.vocab, self.reward, self.cfg.scst)
        tgt = batch["tgt"].to(device)
        mask = tgt != self.vocab.pad  # (B, T) real steps
        logits, extra = training_forward(model, batch["visual"].to(device), batch["inp"].to(device),
                                         batch["index"].to(device), mask)  # (B, T, V), (B,) or None
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tgt.flatten(), ignore_index=self.vocab.pad,
                               reduction="sum", label_smoothing=self.cfg.train.label_smoothing)
        if extra is not None:
            loss = loss + extra.sum()
        return loss, mask.sum()

    def validate(self, model, device) -> dict[str, float]:
        from ..metrics import fast_scores
        from .caption_generate import caption_features, caption_source

        src, limit = self.val_src, self.cfg.data.val_limit
        n = min(len(src.items), limit) if limit else len(src.items)
        if self.val_feats is not None:
            hyps = caption_features(model, self.val_feats[:n], self.vocab, self.cfg.decode, device)
        else:
            hyps = caption_source(model, src, self.vocab, self.cfg.decode, device, limit=n)
        res = {src.items[i].image_id: hyps[i][0][0] for i in range(n)}
        refs = {src.items[i].image_id: src.items[i].captions for i in range(n)}
        return fast_scores(refs, res)
