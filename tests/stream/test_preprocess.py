"""The one preprocessing function on real frames: shape, range, colour-independence."""

import cv2
import numpy as np

from clipwatch.stream.preprocess import InputSpec, denormalize, preprocess

SPEC = InputSpec()


def test_real_frame_becomes_a_normalized_227_square(sample_clip):
    image = cv2.imread(str(sample_clip / "000.jpg"), cv2.IMREAD_COLOR)
    assert image.shape == (240, 360, 3)
    frame = preprocess(image, SPEC)
    assert frame.shape == (227, 227)
    assert frame.dtype == np.float32
    assert -1.0 <= frame.min() < frame.max() <= 1.0
    # A real scene has contrast: not a constant frame after normalization.
    assert frame.std() > 0.05


def test_gray_and_colour_copies_of_a_frame_preprocess_alike(sample_clip):
    colour = cv2.imread(str(sample_clip / "050.jpg"), cv2.IMREAD_COLOR)
    gray = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(colour, cv2.COLOR_BGR2BGRA)
    reference = preprocess(gray, SPEC)
    assert np.abs(preprocess(colour, SPEC) - reference).max() < 1e-6
    assert np.abs(preprocess(bgra, SPEC) - reference).max() < 1e-6


def test_denormalize_inverts_the_value_mapping(sample_clip):
    gray = cv2.imread(str(sample_clip / "010.jpg"), cv2.IMREAD_GRAYSCALE)
    resized = cv2.resize(gray, (227, 227), interpolation=cv2.INTER_AREA)
    assert np.array_equal(denormalize(preprocess(gray, SPEC), SPEC), resized)


def test_sixteen_bit_frames_are_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 300, dtype=np.uint16), (200, 1))
    frame = preprocess(ramp, SPEC)
    assert frame.min() == -1.0 and frame.max() == 1.0
