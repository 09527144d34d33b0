"""Action recognition with visual attention (Sharma, Kiros & Salakhutdinov, sections 3-4) as a
``train.fit`` task: the soft-attention LSTM and the Table 1 baselines on cached CNN feature grids.

Data: every video is decoded once (PyAV), every ``data.frame_step``-th frame resized to
``encoder.image_size`` squared (the paper: 224, aspect ratio not kept) and pushed through the frozen
CNN (``encoder.pool = "grid"``; ``grid.blocks`` keeps only the first blocks of MobileNetV2, e.g. a
stride-16 map); the K x K x D grids are stored as one fp16 ``.npy`` (T, P, D) per video under
``data.cache_dir/<encoder digest>/`` and memory-mapped, so epochs never rerun the CNN.

Training items are random ``data.window``-frame windows (the paper: 30); the loss is Eq. 7: the
cross-entropy of every step's prediction plus ``model.penalty`` (lambda) times the doubly stochastic
penalty of each window, with weight decay from ``train.weight_decay``. Validation scores a video
from all its windows (every ``data.stride`` frames): per-step probabilities averaged over each
window, then over windows (or a majority vote, ``data.vote``). Single-label sets report accuracy;
Hollywood2 (multi-label) reports mean average precision, and its loss spreads the one-hot target
over the video's labels.

Shape legend: N videos, T frames, P = K*K positions, D feature size, C classes, W windows.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..attention import doubly_stochastic_penalty
from ..data import video as video_io
from ..data.action_sets import FORMATS, ActionVideo, read_action_set
from ..data.synth_attention import SynthAttentionSpec, write_synth_attention
from ..encoders import EncoderConfig, ImageEncoder, build_image_encoder
from ..errors import UserError
from ..features import stored
from ..metrics.classification import classification_scores
from ..models.attention_activity import VOTES, AttentionActivity, AttentionActivityConfig, window_scores
from ..train import TrainConfig
from .base import Task


@dataclass
class AttentionDataConfig:
    format: str = "ucf101"          # "ucf101" (classInd + lists; the synthetic set) | "ucf11" | "hmdb51" | "hollywood2"
    root: str = ""                  # dataset root (synthetic: where the set is written)
    splits_dir: str = ""            # ucf101: folder of the lists; hmdb51: folder of *_test_splitN.txt; "" = root
    split: int = 1                  # ucf101 / hmdb51 official split 1, 2 or 3
    test_groups: list[int] = field(default_factory=lambda: list(range(16, 26)))  # ucf11: test-set groups
    window: int = 30                # frames per window, training and test (the paper: 30)
    stride: int = 8                 # test windows start every `stride` frames
    frame_step: int = 1             # keep every n-th frame (the paper samples at a fixed rate)
    vote: str = "mean"              # over windows: "mean" probabilities (the paper) | "majority" vote
    cache_dir: str = ".cache/captionkit/grids"  # fp16 grids, one .npy per video and encoder
    max_val_videos: int = 0         # validate on the first N test videos (0 = all)
    progress: bool = True
    synthetic: bool = False         # use the built-in where-matters videos (written to root)
    synth: SynthAttentionSpec = field(default_factory=SynthAttentionSpec)

    @property
    def modality(self) -> str:
        """Always RGB frames (what ``captionkit evaluate`` reports next to activity models' modality)."""
        return "rgb"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"data.format must be one of {FORMATS}, got {self.format!r}")
        if self.vote not in VOTES:
            raise ValueError(f"data.vote must be one of {VOTES}, got {self.vote!r}")
        if min(self.window, self.stride, self.frame_step) < 1:
            raise ValueError("data.window, data.stride and data.frame_step must be positive")
        if self.split not in (1, 2, 3):
            raise ValueError(f"data.split must be 1, 2 or 3, got {self.split}")


@dataclass
class GridConfig:
    blocks: int = 0                 # mobilenet_v2: keep features[:blocks] (14 = the 96-channel stride-16
                                    # map, 0 = all: the 1280-channel stride-32 map)


def _grid_encoder_default() -> EncoderConfig:
    return EncoderConfig(name="mobilenet_v2", pool="grid", image_size=224)


@dataclass
class AttentionActivityTaskConfig:
    task: str = "attention_activity"
    data: AttentionDataConfig = field(default_factory=AttentionDataConfig)
    encoder: EncoderConfig = field(default_factory=_grid_encoder_default)
    grid: GridConfig = field(default_factory=GridConfig)
    model: AttentionActivityConfig = field(default_factory=AttentionActivityConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.encoder.pool != "grid" or self.encoder.finetune:
            raise ValueError("attention_activity needs encoder.pool = \"grid\" and a frozen CNN (finetune = false)")
        if self.grid.blocks and self.encoder.name != "mobilenet_v2":
            raise ValueError("grid.blocks truncates mobilenet_v2 only")


# ----------------------------------------------------------------------------- the CNN and its grids

def build_grid_encoder(cfg: EncoderConfig, blocks: int = 0, load_weights: bool = True) -> ImageEncoder:
    """The frozen CNN that maps frames (N, 3, S, S) to grids (N, P, D), truncated to ``blocks``."""
    enc = build_image_encoder(cfg, load_weights=load_weights)
    if blocks:
        features = enc.net[0]
        if not 0 < blocks <= len(features):
            raise UserError(f"grid.blocks must be in 1..{len(features)}, got {blocks}")
        enc.net[0] = features[:blocks]
        enc.identity += f":blocks{blocks}"
    enc.out_dim = grid_shape(enc)[1]
    return enc.eval()


def grid_shape(encoder: ImageEncoder) -> tuple[int, int]:
    """(P, D) of the encoder's grids at its input size (one probe forward pass)."""
    S = encoder.cfg.image_size
    with torch.no_grad():
        return tuple(encoder.eval()(torch.zeros(1, 3, S, S)).shape[1:])  # (1, P, D) -> (P, D)


def encoder_digest(encoder: ImageEncoder) -> str:
    """A short hash of the encoder's architecture, input size AND weights: grids of different weights
    never mix, and a CNN rebuilt from a checkpoint finds the grids its training run cached."""
    h = hashlib.sha1(f"{encoder.cfg.image_size}|{encoder.net}".encode())  # not .identity: it names the weights' source
    for name, t in encoder.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def encode_frames(encoder: ImageEncoder, frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 frames (T, S, S, 3) -> grids (T, P, D) in the stored dtype (fp16)."""
    out = []
    for i in range(0, len(frames), encoder.cfg.batch_size):
        x = torch.from_numpy(np.ascontiguousarray(frames[i:i + encoder.cfg.batch_size])).to(device)
        x = x.permute(0, 3, 1, 2).float().div(255.0)  # (b, 3, S, S)
        out.append(stored(encoder((x - encoder.mean) / encoder.std)))  # (b, P, D)
    return torch.cat(out)


def video_grid(encoder: ImageEncoder, path: Path, data: AttentionDataConfig, digest: str,
               device: torch.device) -> np.ndarray:
    """One video's grids (T, P, D) fp16, from the cache when there (memory-mapped), else computed."""
    S = encoder.cfg.image_size
    cached = None
    if data.cache_dir:
        cached = Path(data.cache_dir) / digest / (video_io.cache_key(Path(path), S, data.frame_step) + ".npy")
        if cached.is_file():
            return np.load(cached, mmap_mode="r")
    frames = video_io.decode_video(path, (S, S))[::data.frame_step]  # (T, S, S, 3)
    grid = encode_frames(encoder, frames, device).cpu().numpy()  # (T, P, D) fp16
    if cached is not None:
        video_io.save_array_atomic(grid, cached)
    return grid


def video_grids(encoder: ImageEncoder, paths: list[Path], data: AttentionDataConfig, device: torch.device,
                desc: str = "grids") -> list[np.ndarray]:
    """Grids of every video (computed once, then read from the cache), with a progress bar."""
    encoder = encoder.to(device).eval()
    digest = encoder_digest(encoder)
    return [video_grid(encoder, p, data, digest, device)
            for p in tqdm(paths, desc=desc, unit="video", disable=not data.progress, leave=False)]


# ----------------------------------------------------------------------------- windows

def window_index(T: int, start: int, window: int) -> np.ndarray:
    """Frame indices of a window; a video shorter than the window repeats its last frame."""
    return np.minimum(np.arange(start, start + window), T - 1)


def video_windows(grid: np.ndarray, window: int, stride: int) -> tuple[torch.Tensor, list[np.ndarray]]:
    """grid (T, P, D) -> all test windows (W, window, P, D) float32 and each window's frame indices."""
    idx = [window_index(len(grid), s, window) for s in video_io.clip_starts(len(grid), window, stride)]
    return torch.from_numpy(np.stack([np.asarray(grid[i]) for i in idx])).float(), idx


def label_target(labels: tuple[int, ...], num_classes: int) -> torch.Tensor:
    """Class indices -> a target distribution (C,): one-hot, or spread evenly over several labels."""
    target = torch.zeros(num_classes)
    if labels:
        target[list(labels)] = 1.0 / len(labels)
    return target


class GridWindows(torch.utils.data.Dataset):
    """One random ``window``-frame window per video per epoch: (grids (window, P, D), target (C,))."""

    def __init__(self, grids: list[np.ndarray], videos: list[ActionVideo], window: int, num_classes: int):
        self.grids, self.videos, self.window, self.num_classes = grids, videos, window, num_classes

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int):
        grid = self.grids[i]
        start = int(torch.randint(0, max(1, len(grid) - self.window + 1), ()))
        x = torch.from_numpy(np.asarray(grid[window_index(len(grid), start, self.window)])).float()
        return x, label_target(self.videos[i].labels, self.num_classes)


@dataclass
class VideoPrediction:
    scores: torch.Tensor                 # (C,) video score (mean probability or vote share)
    window_probs: torch.Tensor           # (W, C)
    frame_weights: torch.Tensor | None   # (T, P) attention per frame, averaged over the windows covering it
    window_weights: torch.Tensor | None  # (W, window, P) attention of every window step


@torch.no_grad()
def predict_grid(model: AttentionActivity, grid: np.ndarray, data: AttentionDataConfig,
                 device: torch.device) -> VideoPrediction:
    """One video's grids (T, P, D) -> its prediction and per-frame attention."""
    windows, idx = video_windows(grid, data.window, data.stride)
    scores, per_window, att = window_scores(model, windows.to(device), data.vote)
    frame_weights = None
    if att is not None:
        total, count = torch.zeros(len(grid), att.shape[2]), torch.zeros(len(grid), 1)
        for w, frames in enumerate(idx):
            total.index_add_(0, torch.from_numpy(frames), att[w].float().cpu())
            count.index_add_(0, torch.from_numpy(frames), torch.ones(len(frames), 1))
        frame_weights = total / count.clamp(min=1)  # (T, P)
    return VideoPrediction(scores.cpu(), per_window.cpu(), frame_weights, None if att is None else att.cpu())


def average_precision(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """AP of one class: scores (N,), positive (N,) bool -> mean precision at each positive's rank."""
    order = scores.argsort(descending=True)
    hits = positive[order].float()  # (N,)
    if hits.sum() == 0:
        return float("nan")
    precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def action_metrics(scores: torch.Tensor, videos: list[ActionVideo], num_classes: int) -> dict[str, float]:
    """scores (N, C) -> accuracy and mean class accuracy (single-label sets) and mAP (always)."""
    positive = torch.zeros(len(videos), num_classes, dtype=torch.bool)
    for n, v in enumerate(videos):
        positive[n, list(v.labels)] = True
    aps = [average_precision(scores[:, k], positive[:, k]) for k in range(num_classes) if positive[:, k].any()]
    metrics = {"mAP": sum(aps) / len(aps)}
    if all(len(v.labels) == 1 for v in videos):
        metrics.update(classification_scores(scores, torch.tensor([v.labels[0] for v in videos])))
    return metrics


# ----------------------------------------------------------------------------- the task

def read_videos(data: AttentionDataConfig) -> tuple[list[str], list[ActionVideo], list[ActionVideo]]:
    """-> (class names, training videos, test videos) in the configured format."""
    if data.synthetic:
        root = write_synth_attention(data.root or ".cache/captionkit/synth_attention", data.synth)
    elif not data.root or not Path(data.root).is_dir():
        raise UserError(f"data.root: folder not found: {data.root!r} (or set data.synthetic = true)")
    else:
        root = Path(data.root)
    splits = Path(data.splits_dir) if data.splits_dir else root
    return read_action_set(data.format, root, splits, data.split, data.test_groups)


class AttentionActivityTask(Task):
    name = "attention_activity"
    config_class = AttentionActivityTaskConfig
    higher_is_better = True

    def __init__(self, cfg, extra: dict | None = None):
        super().__init__(cfg, extra)
        self.selection_metric = "mAP" if cfg.data.format == "hollywood2" else "accuracy"
        self._encoder: ImageEncoder | None = None

    def data_source(self) -> str:
        d = self.cfg.data
        return (f"built-in where-matters videos (written to {d.root})" if d.synthetic
                else f"{d.format} videos from {d.root or '.'}")

    def setup(self, rank: int = 0, world: int = 1) -> None:
        from ..train import resolve_device

        data = self.cfg.data
        classes, self.train_videos, self.test_videos = read_videos(data)
        if data.max_val_videos:
            self.test_videos = self.test_videos[:data.max_val_videos]
        self._encoder = build_grid_encoder(self.cfg.encoder, self.cfg.grid.blocks)
        P, D = grid_shape(self._encoder)
        self.extra.update(classes=classes, positions=P, feature_dim=D)
        device = resolve_device(self.cfg.train.device)
        grids = video_grids(self._encoder, [v.path for v in self.train_videos + self.test_videos], data, device)
        self._train_grids, self._test_grids = grids[:len(self.train_videos)], grids[len(self.train_videos):]
        self._train_set = GridWindows(self._train_grids, self.train_videos, data.window, len(classes))

    @property
    def classes(self) -> list[str]:
        if "classes" not in self.extra:
            raise UserError("attention_activity task: no class list (call setup() or load a checkpoint)")
        return list(self.extra["classes"])

    def build_model(self) -> nn.Module:
        encoder = self._encoder or build_grid_encoder(self.cfg.encoder, self.cfg.grid.blocks, load_weights=False)
        return AttentionActivity(self.cfg.model, self.extra["feature_dim"], self.extra["positions"],
                                 len(self.classes), encoder)

    def train_dataset(self):
        return self._train_set

    def loss(self, model: nn.Module, batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 7 per window: sum_t cross-entropy + lambda * sum_i (1 - sum_t l_{t,i})^2, over B*T steps."""
        grids, target = batch  # (B, T, P, D), (B, C)
        logits, weights = model(grids.to(device, non_blocking=True))  # (B, T, C), (B, T, P) | None
        B, T, _ = logits.shape
        logp = logits.float().log_softmax(-1)
        loss_sum = -(target.to(device).unsqueeze(1) * logp).sum()
        if weights is not None and self.cfg.model.penalty:
            loss_sum = loss_sum + self.cfg.model.penalty * doubly_stochastic_penalty(weights.float()).sum()
        return loss_sum, torch.tensor(B * T)

    def predict(self, model: nn.Module, grids: list[np.ndarray], device: torch.device) -> list[VideoPrediction]:
        model.eval()
        return [predict_grid(model, g, self.cfg.data, device) for g in grids]

    def predict_videos(self, model: nn.Module, paths: list[Path], device: torch.device,
                       desc: str = "videos") -> torch.Tensor:
        """Video files -> scores (N, C) (grids from the checkpoint's CNN, through the cache)."""
        grids = video_grids(model.encoder, paths, self.cfg.data, device, desc)
        return torch.stack([p.scores for p in self.predict(model, grids, device)])

    def video_lists(self) -> tuple[list[str], list[ActionVideo], list[ActionVideo]]:
        """(class names, training videos, test videos) of the configured data."""
        return read_videos(self.cfg.data)

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        scores = torch.stack([p.scores for p in self.predict(model, self._test_grids, device)])  # (N, C)
        return action_metrics(scores, self.test_videos, len(self.classes))
