"""Feature extraction (issue 21): the fast path computes the encoder's function, in order, through the
cache; the extraction precision is part of the identity (cache key, checkpoint) and decides forward."""
import threading
import time

import pytest
import torch
from PIL import Image
from torch import nn

from captionkit.encoders import EncoderConfig, build_image_encoder, fold_batchnorm
from captionkit.errors import UserError
from captionkit.features import FeatureCache, encoder_key, extract_features, load_image, prefetched_batches


def _with_running_stats(enc):
    """Random BatchNorm statistics, so that folding them into the convolutions is not a no-op."""
    torch.manual_seed(0)
    for m in enc.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.2)
    return enc.eval()


def _images(tmp_path, n, size=(40, 30)):
    paths = {}
    for i in range(n):
        p = tmp_path / f"img{i}.png"
        Image.new("RGB", size, (i * 30 % 256, 100, 255 - i * 20 % 256)).save(p)
        paths[f"id{i}"] = p
    return paths


@pytest.mark.parametrize("name, pool", [("mobilenet_v2", "avg"), ("resnet18", "grid2"), ("tiny", "avg")])
def test_inference_path_equals_forward(name, pool):
    enc = _with_running_stats(build_image_encoder(EncoderConfig(name=name, image_size=32, pool=pool)))
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        ref, fast = enc(x), enc.for_inference()(x)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-4)
    if name != "tiny":  # torchvision backbones trace: every BatchNorm is folded away
        assert not any(isinstance(m, nn.BatchNorm2d) for m in fold_batchnorm(enc.net).modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in enc.net.modules())  # the encoder itself is untouched


def test_fold_batchnorm_falls_back_on_untraceable_modules():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            return self.bn(self.conv(x)) if x.sum() > 0 else x  # data-dependent: fx cannot trace it

    net = Branchy().eval()
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(fold_batchnorm(net)(x), net(x))


@pytest.mark.parametrize("threads", [1, 2])
def test_extract_features_equals_the_plain_loop(tmp_path, threads):
    """Several batches, decoded ahead in threads: same features, same ids, as one image at a time."""
    paths = _images(tmp_path, 7)
    enc = _with_running_stats(build_image_encoder(EncoderConfig(name="mobilenet_v2", image_size=32)))
    load = lambda i: load_image(paths[i])  # noqa: E731
    feats, skipped = extract_features(enc, list(paths), load, tmp_path / "cache", batch_size=2,
                                      threads=threads)
    assert skipped == [] and list(feats) == list(paths)
    with torch.inference_mode():
        for i, p in paths.items():
            ref = enc(enc.preprocess(load_image(p)).unsqueeze(0))[0]
            torch.testing.assert_close(feats[i], ref, atol=1e-5, rtol=1e-4)
    cached = FeatureCache(tmp_path / "cache", enc.identity).feats
    assert set(cached) == set(paths)


def test_prefetched_batches_keep_order_and_raise_at_the_bad_batch():
    seen_threads = set()

    def prepare(fid):
        seen_threads.add(threading.get_ident())
        time.sleep(0.002 * (hash(fid) % 3))  # uneven decode times
        if fid == "bad":
            raise UserError("corrupt or unreadable image: bad")
        return torch.tensor([float(fid)])

    ids = [str(i) for i in range(10)]
    out = list(prefetched_batches(ids, 3, prepare, skip_bad=False, threads=2))
    assert [b[0] for b in out] == [ids[0:3], ids[3:6], ids[6:9], ids[9:]]
    assert torch.cat([t for b in out for t in b[1]]).tolist() == list(range(10))
    assert threading.get_ident() not in seen_threads  # decoding ran in background threads
    got = []
    with pytest.raises(UserError, match="bad"):
        for batch in prefetched_batches(["0", "1", "2", "bad", "4"], 2, prepare, skip_bad=False, threads=2):
            got.append(batch[0])
    assert got == [["0", "1"]]  # the batches before the bad image were delivered
    skipped = list(prefetched_batches(["0", "bad", "2"], 2, prepare, skip_bad=True))
    assert skipped[0] == (["0"], [torch.tensor([0.0])], ["bad"]) and skipped[1][0] == ["2"]


def test_precision_is_part_of_the_identity_and_cache_key():
    fp32 = build_image_encoder(EncoderConfig(name="mobilenet_v2", image_size=32))
    bf16 = build_image_encoder(EncoderConfig(name="mobilenet_v2", image_size=32, precision="bf16"))
    assert fp32.precision == "fp32" and bf16.precision == "bf16"
    assert bf16.identity == fp32.identity + ":bf16"  # fp32 keeps the identity (and caches) it had
    assert encoder_key(bf16.identity) != encoder_key(fp32.identity)
    tiny = build_image_encoder(EncoderConfig(name="tiny", image_size=32, precision="bf16"))
    assert tiny.identity.endswith(":bf16")
    # a checkpoint's recorded identity decides the precision, whatever the config says
    fp32.identity = bf16.identity + ":lower3"
    assert fp32.precision == "bf16"


def test_precision_config_errors():
    with pytest.raises(ValueError, match="encoder.precision must be one of"):
        EncoderConfig(precision="fp16")
    with pytest.raises(ValueError, match="frozen encoders"):
        EncoderConfig(name="mobilenet_v2", finetune=True, precision="bf16")


def test_bf16_features_agree_with_fp32():
    """bf16 autocast changes the features only within bf16 rounding; forward and the fast path agree."""
    cfg = EncoderConfig(name="mobilenet_v2", image_size=32)
    fp32 = _with_running_stats(build_image_encoder(cfg))
    bf16 = build_image_encoder(EncoderConfig(name="mobilenet_v2", image_size=32, precision="bf16")).eval()
    bf16.load_state_dict(fp32.state_dict())
    x = torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        a, b, fast = fp32(x), bf16(x), bf16.for_inference()(x)
    assert b.dtype == torch.float32 and not torch.equal(a, b)
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.99
    assert torch.nn.functional.cosine_similarity(fast, b).min() > 0.99


def test_checkpoint_records_the_extraction_precision(tmp_path):
    from captionkit import checkpoint
    from captionkit.tasks import load_task
    from captionkit.tasks.loading import load_trained
    from captionkit.train import fit

    from conftest import tiny_caption_recipe

    recipe = tiny_caption_recipe(tmp_path / "run", data={"synth_train": 8, "synth_val": 4},
                                 encoder={"name": "tiny", "finetune": False, "precision": "bf16",
                                          "cache_dir": str(tmp_path / "cache")})
    task = load_task(data=recipe)
    fit(task)
    ckpt = checkpoint.load(tmp_path / "run" / "best.pt")
    assert ckpt["config"]["encoder"]["precision"] == "bf16"
    assert ckpt["extra"]["encoder_identity"].endswith(":bf16")
    _, model = load_trained(ckpt)
    assert model.encoder.precision == "bf16"
    (entry,) = (tmp_path / "cache").iterdir()
    assert (entry / "identity.txt").read_text().strip().endswith(":bf16")
