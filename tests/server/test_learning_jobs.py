"""A learning job yields to the live cameras: while one is sampled down its child process is
paused (SIGSTOP), and runs again once the sampling lifts; a pause that does not help (the
cameras stay behind) ends, and the job is not paused again for a while. A real child
process, its state read from /proc."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from clipwatch.server import learning
from clipwatch.server.learning import LearningJobs


def stopped(pid: int) -> bool:
    """Whether the process is stopped (T in /proc/PID/stat), once a signal sent has landed
    (delivery is asynchronous: up to a second)."""
    def read() -> str:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    first = read()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        time.sleep(0.02)
        if read() != first:
            return read() == "T"
    return first == "T"


@pytest.fixture
def child():
    process = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.01)"],
                               start_new_session=True)
    yield process
    process.kill()
    process.wait()


def test_the_child_pauses_while_a_camera_is_behind_and_runs_after(tmp_path, child,
                                                                monkeypatch):
    behind = [False]
    jobs = LearningJobs(tmp_path, tmp_path, 1, 10, lambda view: None, lambda: behind[0])
    jobs._yield_to_cameras(child)
    assert not stopped(child.pid)
    behind[0] = True
    jobs._yield_to_cameras(child)
    assert stopped(child.pid)
    behind[0] = False
    jobs._yield_to_cameras(child)
    assert not stopped(child.pid) and jobs.yielded_s > 0

    # Still behind after YIELD_MAX_S paused: the training is not the cause.
    monkeypatch.setattr(learning, "YIELD_MAX_S", 0.1)
    behind[0] = True
    jobs._yield_to_cameras(child)
    assert stopped(child.pid)
    time.sleep(0.15)
    jobs._yield_to_cameras(child)
    assert not stopped(child.pid)
    jobs._yield_to_cameras(child)  # within the back-off: not paused again
    assert not stopped(child.pid)


def test_a_job_outlives_the_thread_that_started_it(tmp_path, sample_clip):
    """The child is asked to stop when the thread that started it ends (PR_SET_PDEATHSIG
    is per thread): a job started from an API worker thread that its pool retires must go
    on. Real footage (the sample clip in 5 chunks), a real `clipwatch learn` child."""
    import json
    import threading
    from dataclasses import asdict

    from clipwatch.paths import DEFAULT_MODEL
    from clipwatch.server.learning import JobSpec
    from clipwatch.server.recordings import RecordingPlan
    from clipwatch.stream.preprocess import InputSpec
    from clipwatch.stream.recording import FootageWriter
    from clipwatch.stream.sources import open_source

    folder = tmp_path / "recordings" / "cam-1"
    writer = FootageWriter.create(folder, "camera cam", 10.0, InputSpec(), chunk_frames=30)
    with open_source(sample_clip) as source:
        for frame in list(source)[:150]:
            writer.add(frame.image)
    writer.close()
    (folder / "plan.json").write_text(json.dumps(asdict(RecordingPlan(
        id="cam-1", camera="cam", minutes=0.25, spread_hours=None, fps=10.0, state="done"))))
    models = tmp_path / "models"
    models.mkdir()
    jobs = LearningJobs(tmp_path / "store", models, 1, 10, lambda view: None)
    jobs.start(lambda rid: tmp_path / "recordings" / rid)
    spec = JobSpec(camera="cam", recording="cam-1", name="cam", from_model=str(DEFAULT_MODEL),
                   steps=1000, train_minutes=10)
    starter = threading.Thread(target=jobs.begin, args=(spec,))
    starter.start()
    starter.join()
    time.sleep(3)
    process = jobs._process
    assert process is not None and process.poll() is None, "the child stopped with its thread"
    job_id = next(iter(jobs.jobs))
    assert jobs.cancel(job_id)["state"] == "cancelled"
    assert process.poll() is not None and not (tmp_path / "store" / "learning" / job_id /
                                                "work").exists()
