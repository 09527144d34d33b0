"""Image encoders: local (partial) weight files, frozen/fine-tuned, the feature cache, bad images."""
import pytest
import torch
import torchvision
from PIL import Image

from captionkit.encoders import EncoderConfig, build_image_encoder
from captionkit.errors import UserError
from captionkit.features import FeatureCache, extract_features, load_image


@pytest.fixture(scope="module")
def mobilenet_features_file(tmp_path_factory):
    """A features-only MobileNetV2 state dict (like ../shared/data/weights), made here."""
    torch.manual_seed(0)
    full = torchvision.models.mobilenet_v2(weights=None).state_dict()
    path = tmp_path_factory.mktemp("w") / "mnv2_features.pth"
    torch.save({k: v for k, v in full.items() if not k.startswith("classifier")}, path)
    return path, full


def test_partial_state_dict_loads_and_reports_missing_keys(mobilenet_features_file):
    path, full = mobilenet_features_file
    enc = build_image_encoder(EncoderConfig(name="mobilenet_v2", weights=str(path), image_size=64))
    assert "missing (unused by the encoder): classifier.1.weight, classifier.1.bias" in enc.report
    assert enc.out_dim == 1280 and enc.frozen
    first = enc.net[0][0][0].weight  # features.0.0 conv
    torch.testing.assert_close(first, full["features.0.0.weight"])
    assert enc(torch.randn(2, 3, 64, 64)).shape == (2, 1280)
    assert not any(p.requires_grad for p in enc.parameters())


def test_weights_errors(tmp_path, mobilenet_features_file):
    path, _ = mobilenet_features_file
    with pytest.raises(UserError, match="no key of torchvision's resnet18 layout"):
        build_image_encoder(EncoderConfig(name="resnet18", weights=str(path)))
    wrong = path.parent / "wrong_width.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None, width_mult=0.5).state_dict(), wrong)
    with pytest.raises(UserError, match="shape mismatch"):
        build_image_encoder(EncoderConfig(name="mobilenet_v2", weights=str(wrong)))
    with pytest.raises(UserError, match="file not found"):
        build_image_encoder(EncoderConfig(name="resnet18", weights=str(tmp_path / "nope.pth")))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00junk")
    with pytest.raises(UserError, match="not a readable state dict"):
        build_image_encoder(EncoderConfig(name="resnet18", weights=str(junk)))


@pytest.mark.parametrize("name, dim", [("alexnet", 4096), ("resnet18", 512), ("mobilenet_v2", 1280)])
def test_backbones_output_fc_level_features(name, dim):
    enc = build_image_encoder(EncoderConfig(name=name, image_size=64 if name != "alexnet" else 96))
    assert enc.out_dim == dim
    assert enc(torch.randn(1, 3, enc.cfg.image_size, enc.cfg.image_size)).shape == (1, dim)


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18"])
@torch.no_grad()
def test_pooling_options_are_the_average_plus_more(mobilenet_features_file, name):
    path, _ = mobilenet_features_file
    weights = str(path) if name == "mobilenet_v2" else ""
    enc = {}
    for pool in ("avg", "avgmax", "grid2"):
        torch.manual_seed(0)  # the same random resnet for every pool
        enc[pool] = build_image_encoder(EncoderConfig(name=name, weights=weights, image_size=128, pool=pool))
    x = torch.randn(2, 3, 128, 128)  # a 4x4 last map: the 2x2 grid splits it evenly
    avg, avgmax, grid = (enc[p](x) for p in ("avg", "avgmax", "grid2"))
    C = enc["avg"].out_dim
    assert enc["avgmax"].out_dim == 2 * C and enc["grid2"].out_dim == 4 * C
    assert avgmax.shape == (2, 2 * C) and grid.shape == (2, 4 * C)
    torch.testing.assert_close(avgmax[:, :C], avg)
    assert (avgmax[:, C:] >= avg - 1e-6).all() and (avgmax[:, C:] > avg + 1e-3).any()
    torch.testing.assert_close(grid.view(2, C, 4).mean(2), avg)  # channel-major cells average to avg
    assert not torch.allclose(grid.view(2, C, 4)[..., 0], grid.view(2, C, 4)[..., 3])
    # each pool caches under its own key; "avg" keeps the key it always had
    assert enc["avgmax"].identity == enc["avg"].identity + ":avgmax"
    assert enc["grid2"].identity == enc["avg"].identity + ":grid2"
    assert not enc["avg"].identity.endswith("avg")


def test_bad_pool_settings():
    with pytest.raises(ValueError, match="encoder.pool must be one of"):
        EncoderConfig(name="mobilenet_v2", pool="mean")
    with pytest.raises(ValueError, match="feature map"):
        EncoderConfig(name="vgg16", pool="grid2")


def test_finetune_trains_the_cnn():
    enc = build_image_encoder(EncoderConfig(name="tiny", finetune=True, image_size=32))
    assert all(p.requires_grad for p in enc.parameters()) and not enc.frozen


def _images(tmp_path, n):
    paths = {}
    for i in range(n):
        p = tmp_path / f"img{i}.png"
        Image.new("RGB", (40, 30), (i * 20, 0, 0)).save(p)
        paths[f"id{i}"] = p
    return paths


class Counting(torch.nn.Module):
    def __init__(self, enc):
        super().__init__()
        self.enc, self.calls, self.identity = enc, 0, enc.identity

    def preprocess(self, img):
        return self.enc.preprocess(img)

    def forward(self, x):
        self.calls += x.size(0)
        return self.enc(x)


def test_feature_cache_never_reruns_the_cnn(tmp_path):
    paths = _images(tmp_path, 5)
    enc = Counting(build_image_encoder(EncoderConfig(name="tiny", image_size=32)))
    load = lambda i: load_image(paths[i])  # noqa: E731
    first, _ = extract_features(enc, list(paths), load, tmp_path / "cache", batch_size=2)
    assert enc.calls == 5
    again, _ = extract_features(enc, list(paths), load, tmp_path / "cache", batch_size=2)
    assert enc.calls == 5  # epochs 2..N: no CNN
    for k in paths:
        torch.testing.assert_close(first[k], again[k])
    # a different encoder identity gets its own cache entry
    other = Counting(build_image_encoder(EncoderConfig(name="tiny", image_size=48)))
    extract_features(other, list(paths), load, tmp_path / "cache")
    assert other.calls == 5
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_interrupted_extraction_resumes(tmp_path):
    paths = _images(tmp_path, 6)
    enc = Counting(build_image_encoder(EncoderConfig(name="tiny", image_size=32)))
    load = lambda i: load_image(paths[i])  # noqa: E731
    extract_features(enc, ["id0", "id1", "id2"], load, tmp_path / "c", batch_size=3)  # "interrupted"
    extract_features(enc, list(paths), load, tmp_path / "c", batch_size=3)
    assert enc.calls == 6
    assert set(FeatureCache(tmp_path / "c", enc.identity).feats) == set(paths)


def test_bad_images_name_the_file_or_are_skipped_and_counted(tmp_path):
    paths = _images(tmp_path, 3)
    (tmp_path / "img1.png").write_bytes(b"not a png")
    enc = build_image_encoder(EncoderConfig(name="tiny", image_size=32))
    load = lambda i: load_image(paths[i])  # noqa: E731
    with pytest.raises(UserError, match=r"corrupt or unreadable image: .*img1.png"):
        extract_features(enc, list(paths), load, None)
    feats, skipped = extract_features(enc, list(paths), load, None, skip_bad=True)
    assert skipped == ["id1"] and set(feats) == {"id0", "id2"}
    with pytest.raises(UserError, match="image not found"):
        load_image(tmp_path / "missing.jpg")


def test_checkpoint_needs_no_weights_file_and_keeps_its_cache_identity(tmp_path, mobilenet_features_file):
    """A frozen-encoder captioner trained from a local weights file loads and captions without the
    file, and its encoder keeps the identity its features were cached under."""
    import shutil

    from captionkit import checkpoint
    from captionkit.tasks import load_task
    from captionkit.tasks.loading import load_trained
    from captionkit.train import fit

    from conftest import tiny_caption_recipe

    weights = tmp_path / "w.pth"
    shutil.copy(mobilenet_features_file[0], weights)
    recipe = tiny_caption_recipe(tmp_path / "run", data={"synth_train": 8, "synth_val": 4},
                                 encoder={"name": "mobilenet_v2", "weights": str(weights), "image_size": 32,
                                          "cache_dir": str(tmp_path / "cache")})
    task = load_task(data=recipe)
    fit(task)
    trained_identity = task.encoder().identity
    assert trained_identity.startswith("mobilenet_v2:32:file:")
    weights.unlink()  # the user who gets the checkpoint does not have the weights file
    loaded_task, model = load_trained(checkpoint.load(tmp_path / "run" / "best.pt"))
    assert model.encoder.identity == trained_identity
    ckpt = checkpoint.load(tmp_path / "run" / "best.pt")
    del ckpt["extra"]["encoder_identity"]  # an older checkpoint: identity from the weights themselves
    _, old = load_trained(ckpt)
    assert old.encoder.identity.startswith("mobilenet_v2:32:weights:")


def test_two_writers_sharing_a_cache_never_overwrite_each_other(tmp_path):
    enc = build_image_encoder(EncoderConfig(name="tiny", image_size=32))
    a, b = FeatureCache(tmp_path, enc.identity), FeatureCache(tmp_path, enc.identity)  # both see 0 shards
    a.add(["x"], torch.ones(1, 4))
    b.add(["y"], torch.zeros(1, 4))
    assert set(FeatureCache(tmp_path, enc.identity).feats) == {"x", "y"}


def test_preprocess_never_reads_the_models_device_tensors():
    """DataLoader workers call ``preprocess`` while the model sits on the GPU; a forked worker that
    touches a CUDA tensor dies ("CUDA error: initialization error"). Here the model is moved to the
    meta device, whose tensors hold no data: preprocess must still give the CPU result."""
    enc = build_image_encoder(EncoderConfig(name="tiny", finetune=True, image_size=16))
    img = Image.new("RGB", (20, 12), (200, 30, 90))
    expected = enc.preprocess(img)
    enc.to("meta")
    got = enc.preprocess(img)
    assert got.device.type == "cpu"
    torch.testing.assert_close(got, expected)
    mean = torch.tensor([0.5, 0.5, 0.5]).view(3, 1, 1)
    torch.testing.assert_close(expected[:, 0, 0], ((torch.tensor([200, 30, 90]) / 255 - mean[:, 0, 0]) / 0.25))
