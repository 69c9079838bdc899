"""ClipScorer on real frames: one score per frame, e(t) from the clip ending at t, batching-safe,
gaps, and the live score read off the same objects."""

import numpy as np
import pytest

from clipwatch.model.clip_scorer import ClipScorer, ScorerSettings
from clipwatch.model.detector import Detector, DetectorOptions
from clipwatch.model.reconstructors import FullClips
from clipwatch.model.score_source import score_frames
from clipwatch.model.scoring_options import ScoringOptions
from clipwatch.model.sidecar import Calibration
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


def score_all(detector, frames, stride=1, batch_size=8, keep_maps=False):
    settings = ScorerSettings(spec=detector.input_spec, scoring=ScoringOptions(), stride=stride)
    scorer = ClipScorer("cam", settings, keep_maps=keep_maps)
    scores = list(score_frames(frames, scorer, FullClips(detector), batch_size))
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


def test_a_gap_restarts_the_clips_and_the_live_score(detector, frames):
    """After reset (a gap), no clip spans it, its first request is fresh, frames no clip took
    are dropped, and the live score warms up again from the first frame after it."""
    calibration = Calibration(e_lo=10.0, e_hi=100.0, threshold=0.5, false_alarm_rate=0.01,
                              data="test", frames=100, scoring=ScoringOptions(smooth=3))
    settings = ScorerSettings(spec=detector.input_spec, scoring=ScoringOptions(smooth=3),
                              calibration=calibration)
    scorer = ClipScorer("cam", settings)
    reconstructor = FullClips(detector)
    requests = [r for f in frames[:12] if (r := scorer.add(f)) is not None]
    assert requests[0].fresh and not any(r.fresh for r in requests[1:])
    assert scorer.reset() == []  # every frame so far was in a clip
    after = [f._replace(index=100 + k) for k, f in enumerate(frames[:11])]
    later = [r for f in after if (r := scorer.add(f)) is not None]
    assert later[0].fresh and later[0].indices == tuple(range(100, 110))
    scores = []
    for request in requests + later:  # clips from before the gap are scored after it
        scores += scorer.score(request, reconstructor.reconstruct([request])[0])
    by_index = {s.index: s for s in scores}
    assert sorted(by_index) == list(range(12)) + list(range(100, 111))
    warm = detector.input_spec.clip_length - 1
    for start in (0, 100):
        for k in range(warm):
            assert by_index[start + k].regularity is None
            assert by_index[start + k].score_error == by_index[start + k].error
        first = by_index[start + warm]
        assert first.regularity is not None
        assert first.score_error == pytest.approx(first.error)  # the mean starts afresh
    # Frames a gap leaves unscored (no clip took them yet) are dropped and reported.
    scorer.reset()
    assert scorer.add(frames[0]._replace(index=500)) is None
    assert scorer.reset() == [500]


def test_offline_scorers_keep_every_position_of_every_clip(detector, frames):
    settings = ScorerSettings(spec=detector.input_spec, scoring=ScoringOptions())
    scorer = ClipScorer("cam", settings, all_positions=True, extra_patches=(32,))
    scores = list(score_frames(frames, scorer, FullClips(detector), 4))
    assert len(scorer.clip_errors) == N_FRAMES - 9
    first = scorer.clip_errors[0]
    assert first.indices == tuple(range(10)) and first.new == 10
    assert set(first.errors) == {"frame", "patch32"}
    # The new positions' errors are the frames' scores.
    later = scorer.clip_errors[3]
    assert later.new == 1 and later.errors["frame"][-1] == pytest.approx(scores[12].error)
