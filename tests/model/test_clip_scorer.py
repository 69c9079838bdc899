"""ClipScorer on real frames: one score per frame, e(t) from the clip ending at t, batching-safe."""

import numpy as np
import pytest

from clipwatch.model.clip_scorer import ClipScorer
from clipwatch.model.detector import Detector, DetectorOptions
from clipwatch.stream.preprocess import preprocess
from clipwatch.stream.sources import FolderSource

N_FRAMES = 16


@pytest.fixture(scope="module")
def frames(sample_clip):
    with FolderSource(sample_clip) as source:
        return [f for f, _ in zip(source, range(N_FRAMES), strict=False)]


@pytest.fixture(scope="module")
def detector(exported):
    return Detector(exported[1].onnx_path, DetectorOptions(device="cpu"))


def score_all(detector, frames, **kwargs):
    scorer = ClipScorer(detector, **kwargs)
    scores = [s for f in frames for s in scorer.push(f)] + scorer.flush()
    return scores, scorer


def test_every_frame_gets_one_score_from_the_clip_ending_at_it(detector, frames):
    scores, scorer = score_all(detector, frames, stride=1, batch_size=4, keep_maps=True)
    assert [s.index for s in scores] == list(range(N_FRAMES))
    assert scorer.clips_scored == N_FRAMES - 9
    assert [s.timestamp for s in scores] == pytest.approx([i / 10 for i in range(N_FRAMES)])
    spec = detector.input_spec
    prepared = np.stack([preprocess(f.image, spec) for f in frames])  # (N, S, S)
    for t in (9, 12, N_FRAMES - 1):
        clip = prepared[t - 9:t + 1][None, :, None]  # (1, T, 1, S, S)
        recon = detector.reconstruct(clip)[0, -1, 0]
        expected = np.square(prepared[t] - recon).sum()
        assert scores[t].error == pytest.approx(expected, rel=1e-5)
        assert scores[t].error_map.shape == (227, 227)
        assert scores[t].error_map.sum() == pytest.approx(expected, rel=1e-5)
        assert scores[t].image is frames[t].image
    # The first window scores its first frames from inside that window, each with its own
    # map (the live heatmap for every frame, whatever the stride).
    assert scores[0].error > 0
    assert scores[0].error_map.sum() == pytest.approx(scores[0].error, rel=1e-5)
    assert scores[0].image is frames[0].image


def test_batch_size_does_not_change_scores(detector, frames):
    one, _ = score_all(detector, frames, stride=1, batch_size=1)
    many, _ = score_all(detector, frames, stride=1, batch_size=8)
    assert np.allclose([s.error for s in one], [s.error for s in many], rtol=1e-5)


def test_stride_scores_each_frame_once_with_fewer_clips(detector, frames):
    scores, scorer = score_all(detector, frames, stride=3, batch_size=8)
    assert [s.index for s in scores] == list(range(N_FRAMES))
    assert scorer.clips_scored == 3  # clips end at frames 9, 12, 15
