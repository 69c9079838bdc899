"""The optimized inference paths against the reference (the shipped graph on whole clips).

Tolerances: the exact paths (split, pixel shuffle) must give e(t) within 1e-4 relative of
the reference (float rounding in a different order of operations); the carried-state model
must equal the reference on a clip's first window (same state, same frames); int8 is a
different arithmetic and is held to 3% relative on e(t) of real frames.
"""

from __future__ import annotations

import numpy as np
import pytest

from clipwatch.errors import ModelError
from clipwatch.model.clip_scorer import ClipScorer
from clipwatch.model.detector import Detector
from clipwatch.model.reconstructors import (
    FullClips,
    SplitClips,
    StatefulFrames,
    make_reconstructor,
)
from clipwatch.paths import DEFAULT_MODEL
from clipwatch.stream.sources import open_source

N_FRAMES = 40


@pytest.fixture(scope="module")
def frames(sample_clip):
    with open_source(sample_clip) as source:
        return [f for f, _ in zip(source, range(N_FRAMES), strict=False)]


@pytest.fixture(scope="module")
def detector():
    return Detector(DEFAULT_MODEL)


def live_errors(reconstructor, detector, frames, stride=1, batch=1, cameras=1):
    """e(t) per camera, scoring `cameras` identical streams together through new_frames."""
    scorers = [ClipScorer(detector, stride=stride, keep_maps=True,
                          clip_length=reconstructor.clip_length_override)
               for _ in range(cameras)]
    errors = [{} for _ in scorers]
    pending = []

    def run():
        for (k, scorer, clip), recon in zip(pending, reconstructor.new_frames(
                [(s, c) for _, s, c in pending]), strict=True):
            for score in scorer.score_new(clip, recon):
                errors[k][score.index] = score.error
                assert score.error_map.sum() == pytest.approx(score.error, rel=1e-4)
        pending.clear()

    for frame in frames:
        for k, scorer in enumerate(scorers):
            clip = scorer.add(frame)
            if clip is not None:
                pending.append((k, scorer, clip))
        if len(pending) >= batch:
            run()
    for k, scorer in enumerate(scorers):
        clip = scorer.buffer.flush()
        if clip is not None:
            pending.append((k, scorer, clip))
    if pending:
        run()
    for scorer in scorers:  # the feature cache never outgrows one window
        assert len(scorer.features) <= detector.input_spec.clip_length
    return [np.array([e[i] for i in sorted(e)]) for e in errors]


def reference_errors(detector, frames, stride=1):
    scorer = ClipScorer(detector, stride=stride, batch_size=8)
    scores = [s for f in frames for s in scorer.push(f)] + scorer.flush()
    return np.array([s.error for s in sorted(scores, key=lambda s: s.index)])


@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize("pixel_shuffle", [True, False])
def test_split_parts_give_the_reference_scores(detector, frames, stride, pixel_shuffle):
    reference = reference_errors(detector, frames, stride)
    split = SplitClips(DEFAULT_MODEL, pixel_shuffle=pixel_shuffle)
    (ours,) = live_errors(split, detector, frames, stride=stride)
    assert len(ours) == len(reference) == N_FRAMES
    np.testing.assert_allclose(ours, reference, rtol=1e-4)


def test_the_full_reconstructor_is_the_reference(detector, frames):
    (ours,) = live_errors(FullClips(detector), detector, frames, batch=4)
    np.testing.assert_allclose(ours, reference_errors(detector, frames), rtol=1e-5)


def test_cameras_batched_together_score_as_if_alone(detector, frames):
    split = SplitClips(DEFAULT_MODEL)
    alone = live_errors(split, detector, frames)[0]
    together = live_errors(split, detector, frames, batch=3, cameras=3)
    for errors in together:
        np.testing.assert_allclose(errors, alone, rtol=1e-4)


def test_the_carried_state_model_stays_within_its_tolerance_of_the_reference(detector, frames):
    reference = reference_errors(detector, frames)
    stateful = StatefulFrames(DEFAULT_MODEL)
    (one_by_one,) = live_errors(stateful, detector, frames)
    # On the first window it is the reference: the same frames from the same zero state.
    np.testing.assert_allclose(one_by_one[:10], reference[:10], rtol=1e-5)
    # Beyond it the state carries on where the reference restarts it for every clip: a
    # different model, within 1e-3 relative on these real frames (9e-5 measured on the
    # whole sample clip: this trained ConvLSTM forgets within a window).
    relative = np.abs(one_by_one - reference) / reference
    assert relative[10:].max() < 1e-3 and relative[10:].max() > 0
    # Several frames of one camera in one call are still stepped in order.
    (batched,) = live_errors(stateful, detector, frames, batch=8)
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-6)


def test_int8_encoder_and_decoder_stay_within_three_percent_of_the_reference(detector, frames):
    reference = reference_errors(detector, frames)
    (ours,) = live_errors(make_reconstructor("split-int8", DEFAULT_MODEL), detector, frames)
    assert np.max(np.abs(ours - reference) / reference) < 0.03


def test_a_model_without_parts_is_refused_clearly_or_run_in_full(tmp_path):
    import shutil

    for suffix in (".onnx", ".json"):
        shutil.copy(DEFAULT_MODEL.with_suffix(suffix), tmp_path / f"bare{suffix}")
    with pytest.raises(ModelError, match="has no fast parts"):
        SplitClips(tmp_path / "bare.onnx")
    assert isinstance(make_reconstructor("auto", tmp_path / "bare.onnx"), FullClips)
    with pytest.raises(ModelError, match="unknown model variant"):
        make_reconstructor("warp", tmp_path / "bare.onnx")
