"""The evaluation core: Wilson interval, seeds, failure-mode classification, summary and evidence table."""
import pytest

from octo_ros.evaluation import (
    FAILURE_MODES,
    EpisodeResult,
    HoldTracker,
    classify,
    evidence_markdown,
    parse_seeds,
    summarize,
    wilson_interval,
)


@pytest.mark.parametrize("k,n,low,high", [
    # scipy.stats.binomtest(k, n).proportion_ci(method="wilson")
    (16, 20, 0.5839825677481065, 0.9193423374202021),
    (0, 20, 0.0, 0.16112515805281935),
    (20, 20, 0.8388748419471808, 1.0),
    (1, 2, 0.09453120573423074, 0.9054687942657693),
])
def test_wilson_interval_matches_reference_values(k, n, low, high):
    assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-9)


def test_wilson_interval_refuses_impossible_counts():
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_seed_ranges():
    assert parse_seeds("1000-1003") == [1000, 1001, 1002, 1003]
    assert parse_seeds("1000-1019", 5) == [1000, 1001, 1002, 1003, 1004]
    assert parse_seeds("7", 3) == [7, 8, 9]
    assert parse_seeds("4,2,9") == [4, 2, 9]
    for bad, match in (("5-3", "A-B"), ("x", "A-B"), ("1,1", "repeated"), ("-3", "A-B")):
        with pytest.raises(ValueError, match=match):
            parse_seeds(bad)
    with pytest.raises(ValueError, match="2 seeds for 3 episodes"):
        parse_seeds("1-2", 3)


def feed(tracker, statuses, period=0.2):
    for i, text in enumerate(statuses):
        tracker.update(i * period, text)
    return tracker


def test_a_long_safety_hold_is_the_failure_mode_with_its_reason():
    holds = feed(HoldTracker(min_hold_s=1.0), ["move: "] * 5 + ["hold: arm is outside the workspace box"] * 8)
    assert classify(False, (), holds) == ("safety_hold", "arm is outside the workspace box")


def test_holds_whose_numbers_change_are_one_stretch():
    holds = feed(HoldTracker(min_hold_s=1.0), [f"hold: joint velocity limit: {v:.3f} rad in 0.2 s" for v in (0.8, 1.1, 3.0, 2.7, 2.2, 3.5, 3.4)])
    mode, detail = classify(False, (), holds)
    assert mode == "safety_hold" and detail.startswith("joint velocity limit")


def test_short_or_schedule_holds_leave_a_timeout_naming_the_commonest_hold():
    statuses = ["move: ", "hold: previous step slot not over yet", "move: ", "hold: IK failed: no solution"] * 6
    holds = feed(HoldTracker(min_hold_s=1.0), statuses)
    mode, detail = classify(False, (), holds)
    assert mode == "timeout"
    assert "IK failed: no solution (6 of 24 statuses)" in detail
    assert "previous step slot" not in detail


def test_estop_and_node_death_take_precedence():
    holds = feed(HoldTracker(), ["move: ", "estop: operator", "estop: operator"])
    assert classify(False, (), holds) == ("estop", "operator")
    assert classify(True, (), holds) == ("estop", "operator")  # an e-stopped episode is no success
    assert classify(True, ["policy"], holds) == ("node_error", "policy")
    assert classify(True, (), feed(HoldTracker(), ["move: "] * 3)) == (None, "")


def episode(i, success, mode=None, reached="", named="red"):
    return EpisodeResult(i, 100 + i, "put the gripper on the red block", success, mode, "" if success else "why",
                         10, 3.0, 2.4 if success else None, target="red", instruction_target=named, reached=reached)


def test_summary_and_evidence_table():
    results = [episode(0, True, reached="red"), episode(1, False, "timeout"), episode(2, False, "node_error", reached="blue")]
    evidence = {"checkpoint": "/ck", "checkpoint_hash": "sha256:ab", "cameras": {"image_primary": "64x64"}, "seeds": [100, 101, 102]}
    summary = summarize(results, evidence)
    assert summary["success_rate"] == pytest.approx(1 / 3)
    assert (summary["episodes"], summary["successes"], summary["seeds"]) == (3, 1, [100, 101, 102])
    assert summary["wilson_95"] == pytest.approx(list(wilson_interval(1, 3)))
    assert summary["failure_modes"] == {m: int(m in ("timeout", "node_error")) for m in FAILURE_MODES}
    assert summary["instruction_target_reached_rate"] == pytest.approx(1 / 3)
    assert [e["seed"] for e in summary["per_episode"]] == [100, 101, 102]
    table = evidence_markdown(summary)
    assert "| checkpoint hash | sha256:ab |" in table
    assert "| cameras (input: height x width) | image_primary: 64x64 |" in table
    assert "0.33 (1/3; 95 % Wilson" in table
    assert table.count("\n| ") >= 3 + len(results)


def test_a_swapped_instruction_ends_the_episode_once_the_instructed_block_is_held():
    """`evaluate --swap-target`: the tip that settles on the instructed block ends the episode there
    (an other_target episode); resting on the judged block or passing over one does not."""
    import dataclasses

    import numpy as np

    from octo_ros.evaluation import BlockJudges
    from octo_ros.robots.widowx.sim import TASKS
    from octo_ros.sim.reach import sample_scene

    scene = sample_scene("reach_block", TASKS["reach_block"], 1003)
    other = scene.colours[(scene.target + 1) % len(scene.colours)]
    on = lambda colour: dataclasses.replace(scene, target=scene.colours.index(colour)).target_top + [0, 0, 0.01]  # noqa: E731
    hold = scene.rule.hold_s

    swapped = BlockJudges(scene, other, start=0.0)
    swapped.update(0.0, on(other))
    swapped.update(hold / 2, np.array(scene.start))  # passed over it: not held
    assert not swapped.held
    for t in np.arange(hold, 2.5 * hold, 0.1):
        swapped.update(float(t), on(other))
    assert swapped.held == other and swapped.instructed_other_held and swapped.judged == scene.colours[scene.target]

    judged = BlockJudges(scene, scene.colours[scene.target], start=0.0)
    for t in np.arange(0.0, 2 * hold, 0.1):
        judged.update(float(t), on(scene.colours[scene.target]))
    assert judged.held == scene.colours[scene.target] and not judged.instructed_other_held
