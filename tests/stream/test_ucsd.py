"""UCSD dataset discovery and ground truth, on the real Ped2 data in both layouts.

Where a test needs a layout the shared data does not have as such (a two-scene tarball root,
a copy with only some clips, `_gt` mask folders), it assembles one in tmp_path from symlinks
to the real clip folders rather than inventing frames.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from clipwatch.errors import DatasetError
from clipwatch.stream.ucsd import (
    find_ucsd,
    ground_truth_for_folder,
    parse_ground_truth_m,
    parse_ground_truth_mat,
)

# The official frame-level ground truth of Ped2 test clips 1-6 (UCSDped2.m).
PED2_TEST_GT = [(61, 180), (95, 180), (1, 146), (31, 180), (1, 129), (1, 159)]


@pytest.fixture(scope="module")
def jpeg_root(shared_data: Path) -> Path:
    return shared_data / "ucsd_ped2"


@pytest.fixture(scope="module")
def tif_scene(shared_data: Path) -> Path:
    return shared_data / "ucsd_ped2_tif" / "UCSDped2"


def _n_frames(folder: Path) -> int:
    return sum(1 for n in os.listdir(folder) if not n.startswith("."))


def test_jpeg_layout(jpeg_root: Path) -> None:
    ds = find_ucsd(jpeg_root)
    assert ds is not None
    assert (ds.layout, ds.scene, len(ds.train), len(ds.test)) == ("jpeg", "ucsd_ped2", 16, 6)
    assert [c.name for c in ds.test] == ["01", "02", "03", "04", "05", "06"]
    assert [c.abnormal_intervals for c in ds.test] == [(iv,) for iv in PED2_TEST_GT]
    assert [c.labels(180).sum() for c in ds.test[:3]] == [120, 86, 146]
    assert all(c.abnormal_intervals is None and c.labels(10) is None for c in ds.train)
    # Against each clip's real length: clip 3 has 150 frames, 146 of them abnormal.
    labels = ds.test[2].labels(_n_frames(ds.test[2].frames_dir))
    assert labels is not None and labels.shape == (150,) and labels.sum() == 146
    assert not labels[146:].any() and labels[:146].all()


def test_official_layout(tif_scene: Path) -> None:
    ds = find_ucsd(tif_scene)
    assert ds is not None
    assert (ds.layout, ds.scene, len(ds.train), len(ds.test)) == ("official", "UCSDped2", 1, 1)
    (clip,) = ds.test
    assert (clip.name, clip.abnormal_intervals) == ("Test001", ((61, 180),))
    assert clip.frames_dir == tif_scene / "Test" / "Test001"
    # The shared copy carries Test001's pixel masks (`Test001_gt/*.bmp`), as the tarball
    # does: the folder is found beside its clip (masks are not parsed yet) and is no clip.
    masks = tif_scene / "Test" / "Test001_gt"
    assert clip.mask_dir == (masks if masks.is_dir() else None)
    labels = clip.labels(180)
    assert labels is not None and labels[59:61].tolist() == [False, True]
    assert ds.train[0].name == "Train001" and ds.train[0].abnormal_intervals is None


def test_samples_in_repo_are_a_dataset(sample_clip: Path) -> None:
    ds = find_ucsd(sample_clip.parents[2])
    assert ds is not None and ds.layout == "jpeg"
    assert (len(ds.train), [c.abnormal_intervals for c in ds.test]) == (0, [((61, 180),)])
    clip = ground_truth_for_folder(sample_clip)
    assert clip is not None and clip.abnormal_intervals == ((61, 180),)


def test_not_a_dataset(shared_data: Path, tmp_path: Path) -> None:
    assert find_ucsd(shared_data / "video") is None
    assert find_ucsd(shared_data) is None  # holds datasets, is not one
    assert find_ucsd(tmp_path / "missing") is None


def test_tarball_root_with_two_scenes(tmp_path: Path, tif_scene: Path) -> None:
    root = tmp_path / "UCSD_Anomaly_Dataset.v1p2"
    root.mkdir()
    (root / "UCSDped2").symlink_to(tif_scene, target_is_directory=True)
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    ds = find_ucsd(root)  # one scene: taken without asking
    assert ds is not None and ds.scene == "UCSDped2" and len(ds.test) == 1

    (root / "UCSDped1").symlink_to(tif_scene, target_is_directory=True)
    with pytest.raises(DatasetError, match="several UCSD scenes") as err:
        find_ucsd(root)
    assert str(root) in str(err.value)
    for scene in ("UCSDped1", "ped1"):
        picked = find_ucsd(root, scene=scene)
        assert picked is not None and picked.scene == "UCSDped1"
    with pytest.raises(DatasetError, match="ped3"):
        find_ucsd(root, scene="ped3")


def test_official_entries_map_by_clip_number(
    tmp_path: Path, jpeg_root: Path, tif_scene: Path
) -> None:
    # A partial copy: clips 1, 3 and 9 of the tarball, 6 ground-truth entries, a mask folder
    # and the macOS litter the real tarball carries.
    test = tmp_path / "UCSDped2" / "Test"
    test.mkdir(parents=True)
    shutil.copy(jpeg_root / "UCSDped2.m", test / "UCSDped2.m")
    (test / "._UCSDped2.m").write_bytes(b"\x00\x05\x16\x07")
    (test / "Test001").symlink_to(tif_scene / "Test" / "Test001", target_is_directory=True)
    for number in ("003", "009"):
        (test / f"Test{number}").symlink_to(
            jpeg_root / "testing" / "frames" / "03", target_is_directory=True
        )
    (test / "Test003_gt").mkdir()
    (test / "._Test003").mkdir()

    ds = find_ucsd(tmp_path / "UCSDped2")
    assert ds is not None and ds.train == ()
    got = {c.name: (c.abnormal_intervals, c.mask_dir) for c in ds.test}
    assert got == {
        "Test001": (((61, 180),), None),
        "Test003": (((1, 146),), test / "Test003_gt"),
        "Test009": (None, None),  # beyond the 6 entries: no ground truth, not an error
    }


def test_jpeg_entries_map_by_clip_number(tmp_path: Path, jpeg_root: Path) -> None:
    frames = tmp_path / "ucsd_ped2" / "testing" / "frames"
    frames.mkdir(parents=True)
    (frames / "03").symlink_to(jpeg_root / "testing" / "frames" / "03", target_is_directory=True)
    shutil.copy(jpeg_root / "UCSDped2.m", tmp_path / "ucsd_ped2" / "UCSDped2.m")
    ds = find_ucsd(tmp_path / "ucsd_ped2")
    assert ds is not None
    assert [(c.name, c.abnormal_intervals) for c in ds.test] == [("03", ((1, 146),))]


# --- ground-truth files ---------------------------------------------------------------------


def _ffp_gt(*clips: np.ndarray) -> np.ndarray:
    cells = np.empty(len(clips), dtype=object)
    for i, clip in enumerate(clips):
        cells[i] = clip
    return cells


def test_mat_ground_truth(tmp_path: Path, jpeg_root: Path) -> None:
    gt = _ffp_gt(
        np.array([[61], [180]]),  # the FFP form: 2xK, row 0 starts, row 1 ends
        np.array([[1, 100], [50, 150]], dtype=np.float64),  # two intervals, MATLAB doubles
        np.array([5, 90]),  # a bare [start, end]
    )
    mat = tmp_path / "ped2.mat"
    scipy.io.savemat(mat, {"gt": gt})
    expected = [((61, 180),), ((1, 50), (100, 150)), ((5, 90),)]
    assert parse_ground_truth_mat(mat) == expected

    # And as a dataset's ground truth, in a JPEG root of real clip folders.
    root = tmp_path / "ped2"
    (root / "testing" / "frames").mkdir(parents=True)
    for n in ("01", "02", "03"):
        (root / "testing" / "frames" / n).symlink_to(
            jpeg_root / "testing" / "frames" / n, target_is_directory=True
        )
    shutil.move(mat, root / "ped2.mat")
    ds = find_ucsd(root)
    assert ds is not None and [c.abnormal_intervals for c in ds.test] == expected


def test_mat_ground_truth_malformed(tmp_path: Path) -> None:
    not_mat = tmp_path / "ped2.mat"
    not_mat.write_text("gt = {[61; 180]}")
    with pytest.raises(DatasetError, match="ped2.mat"):
        parse_ground_truth_mat(not_mat)
    bad_shape = tmp_path / "bad.mat"
    scipy.io.savemat(bad_shape, {"gt": _ffp_gt(np.arange(9).reshape(3, 3))})
    with pytest.raises(DatasetError, match="bad.mat"):
        parse_ground_truth_mat(bad_shape)


def test_m_ground_truth_multi_interval(tmp_path: Path) -> None:
    m = tmp_path / "UCSDped1.m"
    m.write_text(
        "TestVideoFile = {};\n"
        "TestVideoFile{end+1}.gt_frame = [61:180];\n"
        "TestVideoFile{end+1}.gt_frame = [1:50, 100:150];  % two events\n"
        "TestVideoFile{end+1}.gt_frame = [5:90,140:200];\n"
    )
    assert parse_ground_truth_m(m) == [
        ((61, 180),),
        ((1, 50), (100, 150)),
        ((5, 90), (140, 200)),
    ]


def test_real_m_file(jpeg_root: Path) -> None:
    assert parse_ground_truth_m(jpeg_root / "UCSDped2.m") == [(iv,) for iv in PED2_TEST_GT]


@pytest.mark.parametrize(
    "text",
    [
        "TestVideoFile{end+1}.gt_frame = [61-180];\n",  # not a MATLAB range
        "TestVideoFile{end+1}.gt_frame = 61:180;\n",  # no brackets
        "TestVideoFile{end+1}.gt_frame = [180:61];\n",  # backwards
        "TestVideoFile = {};\n",  # no entries at all
    ],
)
def test_m_ground_truth_malformed(tmp_path: Path, text: str) -> None:
    m = tmp_path / "UCSDped2.m"
    m.write_text("TestVideoFile = {};\n" + text)
    with pytest.raises(DatasetError, match="UCSDped2.m"):
        parse_ground_truth_m(m)


def test_malformed_m_in_a_dataset_is_reported(tmp_path: Path, jpeg_root: Path) -> None:
    frames = tmp_path / "ucsd_ped2" / "testing" / "frames"
    frames.mkdir(parents=True)
    (frames / "01").symlink_to(jpeg_root / "testing" / "frames" / "01", target_is_directory=True)
    (tmp_path / "ucsd_ped2" / "UCSDped2.m").write_text("gt_frame = [61 to 180];\n")
    with pytest.raises(DatasetError, match="UCSDped2.m line 1"):
        find_ucsd(tmp_path / "ucsd_ped2")


# --- ground_truth_for_folder ----------------------------------------------------------------


def test_ground_truth_for_real_clip_folders(jpeg_root: Path, tif_scene: Path) -> None:
    clip = ground_truth_for_folder(jpeg_root / "testing" / "frames" / "03")
    assert clip is not None and clip.abnormal_intervals == ((1, 146),)
    clip = ground_truth_for_folder(tif_scene / "Test" / "Test001")
    assert clip is not None and (clip.name, clip.abnormal_intervals) == ("Test001", ((61, 180),))
    train = ground_truth_for_folder(jpeg_root / "training" / "frames" / "05")
    assert train is not None and train.abnormal_intervals is None


def test_ground_truth_for_folder_outside_datasets(shared_data: Path, jpeg_root: Path) -> None:
    assert ground_truth_for_folder(shared_data / "video") is None
    assert ground_truth_for_folder(jpeg_root / "testing" / "frames") is None  # not a clip


def test_ground_truth_for_relative_and_symlinked_folders(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = tmp_path / "clip"
    link.symlink_to(shared_data / "ucsd_ped2" / "testing" / "frames" / "03")
    clip = ground_truth_for_folder(link)
    assert clip is not None and clip.abnormal_intervals == ((1, 146),)

    monkeypatch.chdir(shared_data / "ucsd_ped2" / "testing")
    clip = ground_truth_for_folder(Path("frames") / "02")
    assert clip is not None and clip.abnormal_intervals == ((95, 180),)
