"""Video input for activity recognition (LRCN, Donahue et al., section 4): UCF101 lists, decoding
with PyAV, a frame cache on disk, and 16-frame clips.

Layout: ``<root>/<Class>/v_<Class>_gNN_cNN.avi`` (the official one) or flat ``<root>/v_*.avi``;
``classInd.txt`` ("1 ApplyEyeMakeup"), ``trainlist0N.txt`` ("Class/v_....avi 1") and
``testlist0N.txt`` ("Class/v_....avi", the label comes from the class folder or the file name).

Frames are decoded once, resized, and kept as one packed uint8 array per video (``.npy``) in a
cache folder, keyed by the file's absolute path, size and mtime plus the frame size, so a changed
video is decoded again; arrays are memory-mapped when read. Clips follow the paper: training on
random ``clip_len``-frame clips with a random crop and mirror, testing on all ``clip_len``-frame
clips with stride ``stride`` and a centre crop (the video's softmax is averaged over both).

A corrupt or truncated video is never classified from the few frames that decoded: decoding counts
the frames it got against the stream's frame count; below ``min_decoded`` of them (a setting,
``data.min_decoded``, default ``MIN_DECODED``) it is a UserError naming the file and both counts,
and any other shortfall is reported on stderr. ``cache_all`` can skip such videos and count them.

Shape legend: N videos, T frames, H x W frame size, C channels (3), L clip length, S crop size.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import UserError, read_utf8

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg")
MIN_DECODED = 0.5   # a video that decodes to fewer than this fraction of its frames is an error


@dataclass(frozen=True)
class Video:
    path: Path      # the video file
    label: int      # 0-based class index (classInd.txt is 1-based)


# ----------------------------------------------------------------------------- lists

def read_class_index(path: str | Path) -> list[str]:
    """``classInd.txt`` -> class names in index order (index i of the list is label i, 0-based)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"class index not found: {path}")
    pairs = []
    for n, line in enumerate(read_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise UserError(f"{path}:{n}: expected '<index> <ClassName>', got {line.strip()!r}")
        pairs.append((int(parts[0]), parts[1]))
    pairs.sort()
    if [i for i, _ in pairs] != list(range(1, len(pairs) + 1)):
        raise UserError(f"{path}: class indices must run 1..{len(pairs)}")
    return [name for _, name in pairs]


def class_of_name(name: str) -> str | None:
    """``v_ApplyEyeMakeup_g01_c01.avi`` -> ``ApplyEyeMakeup`` (UCF101 file naming), else None."""
    m = re.match(r"v_(.+)_g\d+_c\d+", Path(name).stem)
    return m.group(1) if m else None


def resolve_video(root: Path, rel: str) -> Path:
    """A split-list entry -> the file under ``root`` in the class-folder or the flat layout."""
    for candidate in (root / rel, root / Path(rel).name):
        if candidate.is_file():
            return candidate
    raise UserError(f"video listed in the split but not found under {root}: {rel}")


def read_split(list_path: str | Path, root: str | Path, classes: list[str]) -> list[Video]:
    """``trainlist0N.txt`` / ``testlist0N.txt`` -> videos with 0-based labels."""
    list_path, root = Path(list_path), Path(root)
    if not list_path.is_file():
        raise UserError(f"split list not found: {list_path}")
    index = {name: i for i, name in enumerate(classes)}
    videos = []
    for n, line in enumerate(read_utf8(list_path).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        rel = parts[0]
        if len(parts) > 1:
            label = int(parts[1]) - 1
        else:
            name = Path(rel).parent.name or class_of_name(rel)
            if name not in index:
                raise UserError(f"{list_path}:{n}: cannot tell the class of {rel!r} (not in classInd)")
            label = index[name]
        if not 0 <= label < len(classes):
            raise UserError(f"{list_path}:{n}: label {label + 1} outside 1..{len(classes)}")
        videos.append(Video(resolve_video(root, rel), label))
    if not videos:
        raise UserError(f"{list_path}: no videos listed")
    return videos


# ----------------------------------------------------------------------------- decoding

def decode_video(path: str | Path, size: tuple[int, int] | None = None,
                 min_decoded: float = MIN_DECODED) -> np.ndarray:
    """Decode every frame of a video -> uint8 (T, H, W, 3) RGB, resized to ``size`` = (H, W) if given.

    Fewer than ``min_decoded`` x the stream's frame count (when the container gives one) is a
    UserError naming the file; a smaller shortfall is reported on stderr."""
    import av  # imported here so that importing captionkit does not need PyAV

    path = Path(path)
    if not path.is_file():
        raise UserError(f"video not found: {path}")
    frames, expected, why = [], 0, ""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            expected = stream.frames or 0  # 0: the container does not say
            for frame in container.decode(stream):
                if size is not None:
                    frame = frame.reformat(width=size[1], height=size[0])
                frames.append(frame.to_ndarray(format="rgb24"))  # (H, W, 3)
    except UserError:
        raise
    except Exception as e:  # PyAV raises its own error types for corrupt or non-video files
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        if not frames:
            raise UserError(f"{path}: cannot decode video ({why})") from None
    if not frames:
        raise UserError(f"{path}: no decodable frames")
    check_decoded(path, len(frames), expected, min_decoded, why)
    return np.stack(frames)  # (T, H, W, 3)


def check_decoded(path: Path, got: int, expected: int, min_decoded: float, why: str = "") -> None:
    """UserError when ``got`` < ``min_decoded`` x ``expected`` frames; a stderr line for a lesser
    shortfall (one frame short is container rounding, not reported)."""
    if not expected or got >= expected - 1:
        return
    what = f"{path}: {got} of {expected} frames decoded (corrupt or truncated{f': {why}' if why else ''})"
    if got < min_decoded * expected:
        raise UserError(f"{what}; below data.min_decoded = {min_decoded}")
    print(f"warning: {what}", file=sys.stderr)


def cache_key(path: Path, *parts) -> str:
    """A file name for ``path``'s cached array: its stem + a hash of path, size, mtime and ``parts``."""
    st = path.stat()
    ident = "|".join(map(str, (path.resolve(), st.st_size, st.st_mtime_ns, *parts)))
    return f"{path.stem}-{hashlib.sha1(ident.encode()).hexdigest()[:16]}"


def save_array_atomic(array: np.ndarray, path: Path) -> None:
    """np.save to a temporary file beside ``path``, then rename (safe with concurrent readers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp.npy", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_frames(path: str | Path, size: tuple[int, int] | None, cache_dir: str | Path | None,
                min_decoded: float = MIN_DECODED) -> np.ndarray:
    """Frames of one video (T, H, W, 3) uint8, from the cache when present (memory-mapped)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"video not found: {path}")
    if cache_dir is None:
        return decode_video(path, size, min_decoded)
    cached = Path(cache_dir) / "frames" / (cache_key(path, "rgb", size) + ".npy")
    if cached.is_file():
        return np.load(cached, mmap_mode="r")
    frames = decode_video(path, size, min_decoded)
    try:
        save_array_atomic(frames, cached)
    except OSError as e:
        raise UserError(f"frame cache {cached.parent}: cannot write it ({e.strerror or type(e).__name__}); point "
                        "data.cache_dir at a writable folder") from None
    return frames


def cache_all(videos: list[Video], load, desc: str, progress: bool = True,
              skip_bad: bool = False) -> list[Video]:
    """Run ``load(path)`` over every video once (decoding + caching) with a progress bar; returns the
    videos that loaded. An unreadable or truncated video raises its UserError, or with ``skip_bad``
    is left out and counted on stderr."""
    kept, bad = [], []
    for v in tqdm(videos, desc=desc, unit="video", disable=not progress, dynamic_ncols=True):
        try:
            load(v.path)
            kept.append(v)
        except UserError as e:
            if not skip_bad:
                raise
            bad.append(str(e))
    if bad:
        print(f"skipped {len(bad)} of {len(videos)} videos as unreadable (first: {bad[0]})", file=sys.stderr)
    return kept


# ----------------------------------------------------------------------------- clips

def clip_starts(T: int, clip_len: int, stride: int) -> list[int]:
    """Start frames of the test clips: every ``stride`` frames, plus one ending at the last frame."""
    if T <= clip_len:
        return [0]
    starts = list(range(0, T - clip_len + 1, stride))
    if starts[-1] != T - clip_len:
        starts.append(T - clip_len)  # cover the tail too
    return starts


def take_clip(frames: np.ndarray, start: int, clip_len: int) -> np.ndarray:
    """frames (T, H, W, C) -> (L, H, W, C); a video shorter than L repeats its last frame."""
    idx = np.minimum(np.arange(start, start + clip_len), len(frames) - 1)
    return np.asarray(frames[idx])


def crop(clip: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """(L, H, W, C) -> (L, S, S, C)."""
    return clip[:, top:top + size, left:left + size]


def center_crop(clip: np.ndarray, size: int) -> np.ndarray:
    """(L, H, W, C) -> (L, S, S, C) from the middle (S <= min(H, W))."""
    H, W = clip.shape[1:3]
    return crop(clip, (H - size) // 2, (W - size) // 2, size)


def to_tensor(clip: np.ndarray) -> torch.Tensor:
    """uint8 (L, S, S, C) -> uint8 tensor (L, C, S, S); the model normalises (keeps batches small)."""
    return torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2).contiguous()


def test_clips(frames: np.ndarray, clip_len: int, stride: int, size: int) -> torch.Tensor:
    """All test clips of one video: (T, H, W, C) -> uint8 (K, L, C, S, S), centre-cropped."""
    clips = [to_tensor(center_crop(take_clip(frames, s, clip_len), size))
             for s in clip_starts(len(frames), clip_len, stride)]
    return torch.stack(clips)  # (K, L, C, S, S)


class ClipDataset(torch.utils.data.Dataset):
    """One random training clip per video per epoch: random start, random crop, random mirror.

    ``load(path) -> (T, H, W, C)`` gives the frames (RGB or flow images). ``mirror_flow`` negates the
    x channel of flow images when mirroring (a mirrored video moves the other way).
    """

    def __init__(self, videos: list[Video], load, clip_len: int, crop_size: int, mirror: bool = True,
                 mirror_flow: bool = False):
        self.videos, self.load = videos, load
        self.clip_len, self.crop_size, self.mirror, self.mirror_flow = clip_len, crop_size, mirror, mirror_flow

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int):
        v = self.videos[i]
        frames = self.load(v.path)  # (T, H, W, C)
        T, H, W = frames.shape[:3]
        start = int(torch.randint(0, max(1, T - self.clip_len + 1), ()))
        top = int(torch.randint(0, H - self.crop_size + 1, ()))
        left = int(torch.randint(0, W - self.crop_size + 1, ()))
        clip = crop(take_clip(frames, start, self.clip_len), top, left, self.crop_size)  # (L, S, S, C)
        if self.mirror and bool(torch.rand(()) < 0.5):
            clip = clip[:, :, ::-1]
            if self.mirror_flow:
                clip = clip.copy()
                x = 256 - clip[..., 0].astype(np.int16)  # x flow 128 + u -> 128 - u
                clip[..., 0] = np.clip(x, 0, 255).astype(np.uint8)
        return to_tensor(clip), v.label


def list_videos(folder: str | Path) -> list[Path]:
    """Video files directly in ``folder`` or one level below (class folders), sorted."""
    folder = Path(folder)
    found = [p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()]
    return sorted(found)
