"""Folder benchmarks: the published networks, the three folder layouts and their errors, the pix2pix and CycleGAN
recipes, resuming an interrupted run, and measuring a folder teacher. Tiny 64x64 folders, a few CPU steps."""

import numpy as np
import pytest
import torch
from PIL import Image
from threadpoolctl import threadpool_limits

import gansurvey as gs
from gansurvey.benchmarks import FOLDER_BENCHMARKS
from gansurvey.checks import GanSurveyError
from gansurvey.config import display_path as shown
from gansurvey.data import folders
from gansurvey.metrics.inception import inception_available
from gansurvey.models import build_generator
from gansurvey.models.published import PUBLISHED_PARAMS, NLayerPatchGAN, ResnetGenerator9, UnetGenerator256
from gansurvey.train.folder import FolderTrainConfig, ImagePool, checkpoint_slots, train_cyclegan, train_pix2pix
from tests.conftest import QUICK

SIZE = 64
WIDTH = 0.125  # 8 base filters instead of 64: the published structure at a CPU-friendly size


@pytest.fixture(autouse=True)
def one_thread():
    """These networks are tiny: a second thread only adds synchronisation, which on a shared, busy CPU made a
    CycleGAN step 30x slower (measured: 6 steps 2.1 s on one torch thread, 83 s on two under load) and the
    2048-d Fréchet eigenproblem take 55 s; one torch thread and one BLAS thread avoid both."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


def _png(path, seed, width=SIZE, height=SIZE):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


def make_pix2pix(root, n=3, twins=False):
    """train/ and test/ with A|B files; ``twins`` puts the same image on both halves."""
    for split in ("train", "test"):
        for i in range(n):
            if twins:
                half = np.random.default_rng(i).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
                path = root / split / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.concatenate([half, half], 1)).save(path)
            else:
                _png(root / split / f"{i}.png", hash((split, i)) % 1000, 2 * SIZE, SIZE)
    return root


def make_paired(root, n=3):
    for split in ("train", "test"):
        for i in range(n):
            _png(root / "A" / split / f"{i}.png", i)
            _png(root / "B" / split / f"{i}.png", 100 + i)
    return root


def make_cyclegan(root, n=3):
    for k, name in enumerate(("trainA", "trainB", "testA", "testB")):
        for i in range(n + (k % 2)):  # B sides one image larger: unequal domain sizes
            _png(root / name / f"{name}_{i}.png", 10 * k + i)
    return root


# ------------------------------------------------------------------------------------------------ networks


def test_published_parameter_counts():
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(UnetGenerator256()) == PUBLISHED_PARAMS["unet_256"] == 54_413_955  # printed "54.414 M"
    assert count(ResnetGenerator9()) == PUBLISHED_PARAMS["resnet_9blocks"] == 11_378_179  # printed "11.378 M"
    assert count(NLayerPatchGAN(6, norm="batch")) == 2_768_705  # pix2pix's 70x70 PatchGAN, "2.769 M"
    assert count(NLayerPatchGAN(3, norm="instance")) == 2_764_737  # CycleGAN's, "2.765 M"
    g = build_generator("unet256", num_downs=6, width=WIDTH)
    assert g(torch.zeros(1, 3, SIZE, SIZE)).shape == (1, 3, SIZE, SIZE)
    assert count(build_generator("resnet9", width=0.5)) < count(ResnetGenerator9()) / 3
    with pytest.raises(TypeError, match="fed with images"):
        g.sample_inputs(1)


# ------------------------------------------------------------------------------------------------- layouts


def test_layouts_are_detected_and_listed(tmp_path):
    p2p, paired, cycle = make_pix2pix(tmp_path / "p"), make_paired(tmp_path / "q"), make_cyclegan(tmp_path / "c")
    assert [folders.detect_layout(r) for r in (p2p, paired, cycle)] == ["pix2pix", "paired-folders", "cyclegan"]
    data = folders.scan_folder(cycle)
    assert (len(data.train_a), len(data.train_b), data.paired) == (3, 4, False)
    digest = folders.scan_folder(p2p).digest
    (p2p / "train" / ".DS_Store").write_bytes(b"ignored")
    assert folders.scan_folder(p2p).digest == digest
    _png(p2p / "train" / "9.png", 9, 2 * SIZE, SIZE)
    assert folders.scan_folder(p2p).digest != digest
    (p2p / "test").rename(p2p / "val")  # edges2shoes has train/ and val/ only
    assert folders.scan_folder(p2p).test_split == "val"


def test_paired_augmentation_is_shared_and_test_items_are_resized(tmp_path):
    root = make_pix2pix(tmp_path / "p", twins=True)
    train = folders.PairedFolder(root, "train", size=48, augment=True)
    for seed in range(4):
        a, b = train[(1, seed)]
        assert a.shape == (3, 48, 48) and torch.equal(a, b)  # same crop and flip on both halves
        assert a.min() >= -1 and a.max() <= 1
    assert not torch.equal(train[(1, 0)][0], train[(1, 1)][0])
    a, b = folders.PairedFolder(root, "test", size=32)[0]
    assert a.shape == b.shape == (3, 32, 32)
    assert folders.load_size(256) == 286


def test_batches_depend_on_seed_and_step_only(tmp_path):
    data = folders.UnpairedFolder(make_cyclegan(tmp_path / "c"), "train", size=SIZE, augment=True)
    whole = [(a, b) for a, b in folders.step_loader(data, batch_size=2, steps=4, seed=3)]
    tail = [(a, b) for a, b in folders.step_loader(data, batch_size=2, steps=4, seed=3, start=2, num_workers=1)]
    assert len(whole) == 4 and len(tail) == 2
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(whole[2:], tail, strict=True))
    other = next(iter(folders.step_loader(data, batch_size=2, steps=1, seed=4)))
    assert not torch.equal(other[0], whole[0][0])


def _bad(tmp_path, case):
    """A folder with one problem; returns (root, fragments the error message must contain)."""
    root = tmp_path / case
    if case == "missing":
        return root, [f"{shown(root)}: data folder does not exist; expected a folder in the pix2pix layout"]
    if case == "neither":
        (root / "images").mkdir(parents=True)
        return root, [f"{shown(root)}: neither a paired nor an unpaired layout (found images/); expected the "
                      "pix2pix"]
    if case == "no-test":
        _png(root / "train" / "0.png", 0, 2 * SIZE, SIZE)
        return root, [f"{shown(root / 'test')}: missing folder; the pix2pix layout needs test/ (or val/) beside "
                      "train/"]
    if case == "empty-split":
        make_pix2pix(root)
        for path in (root / "test").iterdir():
            path.unlink()
        return root, [f"{shown(root / 'test')}: empty split; expected at least one image"]
    if case == "non-image":
        make_cyclegan(root)
        (root / "trainB" / "notes.txt").write_text("hello")
        return root, [f"{shown(root / 'trainB' / 'notes.txt')}: not an image file", "expected only images (.jpg"]
    if case == "unreadable":
        make_paired(root)
        (root / "B" / "test" / "1.png").write_bytes(b"\x89PNG not really")
        return root, [f"{shown(root / 'B' / 'test' / '1.png')}: unreadable image",
                      "expected an image file Pillow can open"]
    if case == "mixed-sizes":
        make_pix2pix(root)
        _png(root / "train" / "1.png", 1, 96, SIZE)
        return root, [f"{shown(root / 'train' / '1.png')}: image of 96x64 pixels among images of 128x64",
                      "needs all images of one size"]
    if case == "odd-width":
        for split in ("train", "test"):
            _png(root / split / "0.png", 0, 65, SIZE)
        return root, ["65x64 pixels; the pix2pix layout needs an even width"]
    if case == "names":
        make_paired(root)
        (root / "B" / "train" / "2.png").rename(root / "B" / "train" / "7.png")
        return root, [f"{shown(root / 'A' / 'train')} and {shown(root / 'B' / 'train')}: file names do not match",
                      "only in A: ['2.png'], only in B: ['7.png']"]
    if case == "pair-sizes":
        make_paired(root)
        _png(root / "B" / "train" / "0.png", 0, 32, 32)
        return root, [f"{shown(root / 'B' / 'train' / '0.png')}: 32x32 pixels but its pair", "of one size"]
    if case == "cyclegan-missing":
        make_cyclegan(root)
        for path in (root / "testB").iterdir():
            path.unlink()
        (root / "testB").rmdir()
        return root, [f"{shown(root / 'testB')}: missing folder; the CycleGAN layout (trainA/, trainB/, testA/, "
                      "testB/)"]
    raise AssertionError(case)


BAD_CASES = ("missing", "neither", "no-test", "empty-split", "non-image", "unreadable", "mixed-sizes", "odd-width",
             "names", "pair-sizes", "cyclegan-missing")


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_folders_are_refused_before_training(tmp_path, artifacts, case):
    root, fragments = _bad(tmp_path, case)
    for name in FOLDER_BENCHMARKS:
        with pytest.raises(GanSurveyError) as error:
            gs.get_benchmark(name, data_root=root, size=SIZE)
        for fragment in fragments:
            assert fragment in str(error.value), (fragment, str(error.value))
        assert str(tmp_path) not in str(error.value)  # #21: no path of the machine, Pillow's own message included
    assert not artifacts.exists()  # nothing trained, nothing cached


def test_benchmark_arguments_are_checked(tmp_path):
    with pytest.raises(GanSurveyError, match="'pix2pix-folder' trains on your own image folder: pass data_root"):
        gs.get_benchmark("pix2pix-folder")
    with pytest.raises(GanSurveyError, match="'mnist-dcgan' is built in: data_root"):
        gs.get_benchmark("mnist-dcgan", data_root=tmp_path)
    with pytest.raises(GanSurveyError, match="unpaired CycleGAN layout .* pix2pix-folder needs paired data") as err:
        gs.get_benchmark("pix2pix-folder", data_root=make_cyclegan(tmp_path / "c"), size=SIZE)
    assert str(tmp_path) not in str(err.value)  # no machine path in the message
    with pytest.raises(GanSurveyError, match="power of two"):
        gs.get_benchmark("pix2pix-folder", data_root=make_pix2pix(tmp_path / "p"), size=96)


# ------------------------------------------------------------------------------------------- train, resume


def _pix2pix_run(root, steps, checkpoint=None, callback=None, amp=False):
    gs.seed_everything(0)
    g, d = UnetGenerator256(num_downs=6, width=WIDTH), NLayerPatchGAN(6, width=WIDTH)
    data = folders.PairedFolder(root, "train", SIZE, augment=True)
    config = FolderTrainConfig(steps=steps, checkpoint_every=3, log_every=2, progress=False, amp=amp)
    history = train_pix2pix(g, d, data, config, checkpoint=checkpoint, callback=callback)
    return {"g": g.state_dict(), "d": d.state_dict()}, history


def _cyclegan_run(root, steps, checkpoint=None, callback=None):
    gs.seed_everything(0)
    nets = [ResnetGenerator9(width=WIDTH, blocks=2), ResnetGenerator9(width=WIDTH, blocks=2),
            NLayerPatchGAN(3, norm="instance", width=WIDTH), NLayerPatchGAN(3, norm="instance", width=WIDTH)]
    data = folders.UnpairedFolder(root, "train", SIZE, augment=True)
    # a pool of 2 fills within the first steps, so the resumed run must restore its images and generator
    config = FolderTrainConfig(steps=steps, pool_size=2, checkpoint_every=3, log_every=2, progress=False)
    history = train_cyclegan(*nets, data, config, checkpoint=checkpoint, callback=callback)
    return {f"net{i}": n.state_dict() for i, n in enumerate(nets)}, history


def _interrupt_at(step):
    def callback(done):
        if done == step:
            raise KeyboardInterrupt(f"simulated crash after step {done}")
    return callback


@pytest.mark.parametrize("kind", ["pix2pix", "cyclegan"])
def test_interrupted_run_resumes_to_the_same_weights(tmp_path, kind):
    maker, run = (make_pix2pix, _pix2pix_run) if kind == "pix2pix" else (make_cyclegan, _cyclegan_run)
    root = maker(tmp_path / "data")
    straight, straight_log = run(root, 6)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        run(root, 6, ckpt, _interrupt_at(4))  # step 4 is lost: the last checkpoint is at step 3
    assert [s.exists() for s in checkpoint_slots(ckpt)] == [False, True]
    resumed, resumed_log = run(root, 6, ckpt)
    for name, state in straight.items():
        for key, tensor in state.items():
            assert torch.equal(tensor, resumed[name][key]), (name, key)
    assert resumed_log == straight_log and [row["step"] for row in straight_log] == [2, 4, 6]
    with pytest.raises(GanSurveyError, match="checkpoint of another run"):
        run(root, 7, ckpt)


def test_mixed_precision_is_cuda_only(tmp_path):
    root = make_pix2pix(tmp_path / "data")
    plain, _ = _pix2pix_run(root, 2)
    asked, _ = _pix2pix_run(root, 2, amp=True)  # on a CPU the option is ignored
    assert all(torch.equal(v, asked["g"][k]) for k, v in plain["g"].items())


def test_image_pool_follows_the_published_rule():
    pool = ImagePool(2, seed=0)
    first = pool.query(torch.arange(2.0).view(2, 1, 1, 1))
    assert first.flatten().tolist() == [0.0, 1.0] and len(pool.images) == 2
    out = pool.query(torch.full((50, 1, 1, 1), 9.0)).flatten()
    assert set(out.tolist()) <= {0.0, 1.0, 9.0} and (out == 9.0).sum() >= 25


# ----------------------------------------------------------------------------------- benchmarks end to end


def test_pix2pix_folder_teacher_is_cached_and_measured(tmp_path, artifacts):
    bench = gs.get_benchmark("pix2pix-folder", data_root=make_paired(tmp_path / "q"), size=SIZE, steps=3,
                             width=WIDTH, num_workers=0)
    assert (bench.primary_metric, bench.higher_is_better, bench.architecture) == ("fid", False, "unet256")
    g, d = bench.teacher("quick", progress=False, device="cpu")
    assert g.hparams["num_downs"] == 6 and g.hparams["width"] == WIDTH
    teachers = list((artifacts / "teachers").glob("*.pt"))
    assert len(teachers) == 1 and not list((artifacts / "checkpoints").glob("*.pt.*"))
    published = gs.get_benchmark("pix2pix-folder", data_root=tmp_path / "q", size=SIZE)
    assert (published.teacher_steps("quick"), published.teacher_steps("full")) == (200, 200 * 3)  # 200 epochs
    assert published.new_generator().hparams["width"] == 1.0
    assert bench.new_generator(0.5).hparams["width"] == WIDTH / 2
    samples = 2 if inception_available() else 0
    q = bench.quality(g, QUICK, device="cpu", inception_samples=samples)
    assert set(q) >= {"psnr", "ssim"} and all(np.isfinite(v) for v in q.values())
    if samples:
        assert q["fid"] > 0 and q["fid_samples"] == 2
    # another folder (a changed file list) is another teacher
    _png(tmp_path / "q" / "A" / "train" / "3.png", 3)
    _png(tmp_path / "q" / "B" / "train" / "3.png", 4)
    other = gs.get_benchmark("pix2pix-folder", data_root=tmp_path / "q", size=SIZE, steps=3, width=WIDTH,
                             num_workers=0)
    assert other.data.digest != bench.data.digest and other._key("quick", 0) != bench._key("quick", 0)


def test_cyclegan_folder_teacher_trains_and_measures(tmp_path, artifacts):
    bench = gs.get_benchmark("cyclegan-folder", data_root=make_cyclegan(tmp_path / "c"), size=SIZE, steps=2,
                             width=WIDTH, num_workers=0)
    g, d = bench.teacher("quick", progress=False, device="cpu")
    state = bench.teacher_state("quick")
    assert set(state) == {"generator", "discriminator", "generator_ba", "discriminator_a", "log"}
    assert isinstance(g, ResnetGenerator9) and d(g(bench.example_input(2))).shape == (2, 36)
    record = gs.measure(g, bench, technique="teacher", profile=QUICK, device="cpu", inception_samples=0)
    assert record.params == sum(p.numel() for p in g.parameters()) and record.macs > 0
    assert record.primary_metric == "fid" and record.benchmark == "cyclegan-folder"
