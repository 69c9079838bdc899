"""plan_rates: sharing the measured scoring capacity among cameras (water-filling). Pure:
demands and seconds per clip in, per-camera frame rates out."""

from __future__ import annotations

import itertools

import pytest

from clipwatch.server.balance import HEADROOM, CameraDemand, plan_rates


def spc_for(clips_per_s: float) -> float:
    """The seconds per clip that plan for `clips_per_s` clips a second, headroom included."""
    return HEADROOM / clips_per_s


def demand(camera: str, fps_in: float, stride: int = 1, sampled: bool = False) -> CameraDemand:
    return CameraDemand(camera, fps_in, stride, sampled)


def clips_planned(plan: dict[str, float | None], demands: list[CameraDemand]) -> float:
    return sum((d.fps_in if plan[d.camera] is None else plan[d.camera]) / d.stride
               for d in demands)


def test_nothing_to_plan_without_a_measurement_or_cameras() -> None:
    assert plan_rates([demand("a", 10.0)], None) == {}
    assert plan_rates([demand("a", 10.0)], 0.0) == {}
    assert plan_rates([], 0.01) == {}


def test_demand_that_fits_easily_keeps_every_frame() -> None:
    demands = [demand("a", 10.0), demand("b", 10.0), demand("c", 10.0)]
    assert plan_rates(demands, spc_for(100.0)) == {"a": None, "b": None, "c": None}


def test_demand_that_fits_without_sampling_changes_nothing() -> None:
    # 80 of 100 clips/s: above the lifting mark, but fits and nothing is sampled: leave it
    demands = [demand("a", 40.0), demand("b", 40.0)]
    assert plan_rates(demands, spc_for(100.0)) == {}


def test_over_capacity_equal_cameras_share_it_equally() -> None:
    demands = [demand("a", 20.0), demand("b", 20.0), demand("c", 20.0)]
    plan = plan_rates(demands, spc_for(30.0))
    assert plan == pytest.approx({"a": 10.0, "b": 10.0, "c": 10.0})
    assert clips_planned(plan, demands) == pytest.approx(30.0)


def test_a_small_camera_keeps_all_its_frames_and_the_rest_split_what_is_left() -> None:
    demands = [demand("big1", 40.0), demand("small", 5.0), demand("big2", 40.0)]
    plan = plan_rates(demands, spc_for(30.0))
    assert plan["small"] is None
    assert plan["big1"] == pytest.approx(12.5) and plan["big2"] == pytest.approx(12.5)
    assert clips_planned(plan, demands) == pytest.approx(30.0)


def test_water_filling_in_several_levels() -> None:
    # 40 clips/s, 10 each: a (4) keeps all; 36 left for three, 12 each: b (8) keeps all;
    # 28 left for c and d, 14 each
    demands = [demand("a", 4.0), demand("b", 8.0), demand("c", 30.0), demand("d", 50.0)]
    plan = plan_rates(demands, spc_for(40.0))
    assert plan["a"] is None and plan["b"] is None
    assert plan["c"] == pytest.approx(14.0) and plan["d"] == pytest.approx(14.0)


def test_stride_counts_clips_not_frames() -> None:
    # stride 2 at 40 fps wants 20 clips/s; the capacity is 10 clips/s: 20 frames/s kept
    plan = plan_rates([demand("a", 40.0, stride=2)], spc_for(10.0))
    assert plan == pytest.approx({"a": 20.0})
    # with a stride-1 camera beside it, each gets 5 clips/s: 10 and 5 frames/s
    plan = plan_rates([demand("a", 40.0, stride=2), demand("b", 40.0)], spc_for(10.0))
    assert plan == pytest.approx({"a": 10.0, "b": 5.0})


def test_the_plan_does_not_depend_on_the_order_of_cameras() -> None:
    demands = [demand("a", 4.0), demand("b", 8.0, stride=2), demand("c", 30.0),
               demand("d", 50.0, stride=5)]
    plans = [plan_rates(list(order), spc_for(12.0)) for order in itertools.permutations(demands)]
    for plan in plans[1:]:
        assert plan == pytest.approx(plans[0])


def test_the_headroom_is_left_unplanned() -> None:
    # measured: 0.01 s a clip, 100 clips/s flat out; the plan uses HEADROOM of it
    demands = [demand("a", 100.0), demand("b", 100.0)]
    plan = plan_rates(demands, 0.01)
    assert clips_planned(plan, demands) == pytest.approx(100.0 * HEADROOM)


def test_sampling_is_lifted_when_demand_drops_below_70_percent() -> None:
    capacity = 30.0
    sampled = [demand("a", 20.0, sampled=True), demand("b", 20.0, sampled=True)]
    assert plan_rates(sampled, spc_for(capacity)) == pytest.approx({"a": 15.0, "b": 15.0})
    # the cameras slow down: 20 of 30 clips/s is under the 70% mark: every frame again
    slower = [demand("a", 10.0, sampled=True), demand("b", 10.0, sampled=True)]
    assert plan_rates(slower, spc_for(capacity)) == {"a": None, "b": None}
    # or scoring got faster (the machine is less busy): the same
    assert plan_rates(sampled, spc_for(100.0)) == {"a": None, "b": None}


def test_a_sampled_camera_is_replanned_while_demand_stays_over_capacity() -> None:
    # still over capacity: the sampled cameras get a fresh share, not the old one
    plan = plan_rates([demand("a", 30.0, sampled=True), demand("b", 30.0, sampled=True)],
                      spc_for(20.0))
    assert plan == pytest.approx({"a": 10.0, "b": 10.0})


def test_sampling_in_force_stays_while_demand_is_between_70_percent_and_capacity() -> None:
    # 24 of 30 clips/s: it would fit, but not by much; lifting now would flap at the limit.
    near = [demand("a", 12.0, sampled=True), demand("b", 12.0, sampled=True)]
    assert plan_rates(near, spc_for(30.0)) == {}
