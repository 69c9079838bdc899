"""The trainer on real normal frames: the loss goes down, and resume is exact."""

import numpy as np
import pytest
import torch

from clipwatch.model.checkpoint import load_checkpoint, model_from_checkpoint
from clipwatch.model.network import SpatiotemporalAutoencoder
from clipwatch.model.train import TrainConfig, learning_rate, train
from clipwatch.stream.footage import load_clip
from clipwatch.stream.preprocess import InputSpec


@pytest.fixture(scope="module")
def normal_clip(shared_data):
    return shared_data / "ucsd_ped2" / "training" / "frames" / "01"  # 120 normal frames


def reconstruction_mse(model, clips: np.ndarray) -> float:
    with torch.no_grad():
        return float(torch.mean((model(torch.from_numpy(clips)) - torch.from_numpy(clips)) ** 2))


def test_short_training_lowers_the_loss_on_real_frames(normal_clip, tmp_path):
    frames = load_clip(normal_clip, InputSpec()).astype(np.float32)
    fixed = np.stack([frames[s:s + 10] for s in (0, 37, 74, 110)])[:, :, None]  # (4, T, 1, S, S)
    config = TrainConfig(data=str(normal_clip), steps=12, batch_size=2, lr=1e-3, seed=3,
                         checkpoint_every_s=1e9)
    torch.manual_seed(config.seed)  # the trainer seeds the same way before building the model
    before = reconstruction_mse(SpatiotemporalAutoencoder().eval(), fixed)
    result = train(config, tmp_path / "run")
    assert result.step == 12 and len(result.losses) == 12
    after = reconstruction_mse(model_from_checkpoint(load_checkpoint(result.checkpoint))[0], fixed)
    assert after < 0.5 * before, (before, after)


def test_resume_continues_exactly_where_it_stopped(normal_clip, tmp_path):
    def config(steps):
        return TrainConfig(data=str(normal_clip), steps=steps, batch_size=1, lr=1e-3, seed=5,
                           lr_schedule="cosine", checkpoint_every_s=1e9)

    whole = train(config(4), tmp_path / "whole")
    interrupted = train(config(4), tmp_path / "split", stop_at=2)  # as if killed at 2
    assert interrupted.step == 2
    resumed = train(config(4), tmp_path / "split", resume=True)
    a, b = load_checkpoint(whole.checkpoint), load_checkpoint(resumed.checkpoint)
    assert b["step"] == 4
    assert b["losses"] == a["losses"]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert [h["from_step"] for h in b["history"]] == [0, 2]

    # Rerunning a finished run (as make_ped2_model.sh does) trains nothing and leaves its
    # checkpoint untouched, history included.
    before = resumed.checkpoint.read_bytes()
    again = train(config(4), tmp_path / "split", resume=True)
    assert again.step == 4 and resumed.checkpoint.read_bytes() == before


def test_cosine_schedule_decays_to_a_tenth():
    config = TrainConfig(data="x", steps=100, lr=1e-3, lr_schedule="cosine")
    assert learning_rate(config, 0) == pytest.approx(1e-3)
    assert learning_rate(config, 50) == pytest.approx(0.55e-3)
    assert learning_rate(config, 100) == pytest.approx(1e-4)
    assert learning_rate(TrainConfig(data="x", lr=2e-4), 77) == 2e-4


def test_pseudo_anomalies_are_skipped_frames_trained_towards_their_stride_one_clip():
    from clipwatch.model.train import ClipSampler

    # Each frame holds its own index, so a clip says which frames it took.
    video = np.broadcast_to(np.arange(200, dtype=np.float16)[:, None, None], (200, 4, 4))
    sampler = ClipSampler([video], 10, (1,), np.random.default_rng(0), pseudo_strides=(3, 5))
    for _ in range(20):
        inputs, targets = sampler.sample(4, pseudo=1)
        first = inputs[:, :, 0, 0, 0]  # (B, T) frame indices
        steps = np.diff(first, axis=1)
        assert (steps[:3] == 1).all() and np.array_equal(inputs[:3], targets[:3])
        assert len(set(steps[3].tolist())) == 1 and steps[3, 0] in (3, 5)
        # The target: the same first frame, at normal speed.
        np.testing.assert_array_equal(targets[3, :, 0, 0, 0], first[3, 0] + np.arange(10))


def test_fine_tuning_starts_from_the_shipped_models_weights(normal_clip, tmp_path):
    from clipwatch.errors import ClipwatchError
    from clipwatch.model.fast_export import network_from_onnx
    from clipwatch.paths import DEFAULT_MODEL

    config = TrainConfig(data=str(normal_clip), steps=1, batch_size=2, lr=1e-9, seed=1,
                         checkpoint_every_s=1e9, init=str(DEFAULT_MODEL), pseudo_anomalies=1,
                         frame_strides=(1,), snapshot_every=1)
    result = train(config, tmp_path / "run")
    tuned = load_checkpoint(result.checkpoint)["model"]
    shipped = network_from_onnx(DEFAULT_MODEL).state_dict()
    for name, tensor in shipped.items():  # one step at a negligible rate: still the shipped
        torch.testing.assert_close(tuned[name], tensor, atol=1e-6, rtol=0)
    assert (tmp_path / "run" / "step_000001.pt").is_file()
    bad = TrainConfig(data=str(normal_clip), steps=1, init=str(tmp_path / "none.onnx"))
    with pytest.raises(ClipwatchError, match="does not exist"):
        train(bad, tmp_path / "bad")
    many = TrainConfig(data=str(normal_clip), steps=1, batch_size=2, pseudo_anomalies=2)
    with pytest.raises(ClipwatchError, match="pseudo-anomalies per batch must be 0 to 1"):
        train(many, tmp_path / "many")


def test_a_local_pseudo_anomaly_is_fast_only_inside_a_box_on_the_moving_content():
    from clipwatch.model.train import ClipSampler

    size = 64
    video = np.zeros((120, size, size), np.float16)
    for i in range(120):  # a bright bar sweeping down a still scene
        video[i, i % 60:i % 60 + 4, :] = 1.0
    sampler = ClipSampler([video], 10, (1,), np.random.default_rng(1), pseudo_strides=(3,),
                          box_share=1.0)
    for _ in range(10):
        inputs, targets = sampler.sample(2, pseudo=1)
        np.testing.assert_array_equal(inputs[0], targets[0])  # the normal clip is untouched
        changed = (inputs[1] != targets[1]).any(axis=(0, 1))  # (S, S) pixels that differ
        ys, xs = np.nonzero(changed)
        assert ys.size > 0, "the box must hold moving content"
        # One box: what differs fits in a square no larger than the largest box side.
        assert ys.max() - ys.min() < 0.4 * size + 1 and xs.max() - xs.min() < 0.4 * size + 1
