"""The adapter nodes' bookkeeping without ROS (octo_ros.control.operation): chunk intake from
ActionChunks, tick accounting and warnings, operator answers, diagnostics, on a real WidowX core."""
from types import SimpleNamespace as Parameter  # what the core reads of an rclpy Parameter

import numpy as np
import pytest

from octo_ros.control.kinematics import solve_ik
from octo_ros.control.operation import AdapterOperation, joint_index
from octo_ros.control.safety import ControlStatus
from octo_ros.control.teleop import DELTA_ACTION_NAMES
from octo_ros.datatypes import TELEOP_SOURCE, ActionChunk
from octo_ros.robots.interbotix.kinematics import WX250S
from octo_ros.robots.widowx.adapter import BRIDGE_START_STATE, WidowXAdapter, WidowXConfig, pose_from_bridge_state
from octo_ros.timebase import seconds_to_ns

START_Q = solve_ik(WX250S, pose_from_bridge_state(BRIDGE_START_STATE)).q


def make(unset=()):
    adapter = WidowXAdapter(WidowXConfig())
    adapter.update_joint_state(START_Q, 0.0, gripper_open=True, now=0.0)
    return AdapterOperation(adapter, adapter.config.execution.step_period_s, unset)


def chunk(t=0.0, step_period=0.2, names=DELTA_ACTION_NAMES, sequence=3, source="policy"):
    return ActionChunk(stamp_ns=seconds_to_ns(t), actions=np.tile([0.01, 0, 0, 0, 0, 0, 1.0], (4, 1)),
                       step_period_s=step_period, dimension_names=tuple(names), source=source, sequence=sequence)


def test_chunks_are_counted_and_refusals_say_why():
    op = make()
    assert op.add_chunk(chunk(), 0.0) is None and op.chunks_accepted == 1
    key, text = op.add_chunk(chunk(step_period=0.1), 0.0)
    assert key == "chunk:step_period" and "step_period 0.1 s, this adapter executes 0.2 s steps" in text
    key, text = op.add_chunk(chunk(names=("a",) * 7), 0.0)
    assert key.startswith("chunk:action") and "do not match this adapter's layout" in text
    assert op.malformed_chunk(ValueError("horizon 0"))[1] == "action_chunk rejected: horizon 0"
    assert (op.chunks_accepted, op.chunks_rejected) == (1, 3)


def test_a_source_switch_is_said_once():
    op = make()
    assert op.set_source(TELEOP_SOURCE).startswith("chunk source policy -> teleop")
    assert op.set_source(TELEOP_SOURCE) == ""
    with pytest.raises(ValueError, match="unknown chunk source"):
        op.set_source("joystick")
    assert op.add_chunk(chunk(), 0.0)[1].endswith("this adapter executes 'teleop' chunks")


def test_ticks_are_counted_and_a_new_hold_reason_is_warned_once():
    op = make()
    op.adapter.set_dry_run(False)
    op.add_chunk(chunk(), 0.0)
    status = op.record_tick(op.adapter.step(0.0))
    assert status == "move: " and (op.ticks, op.commands_sent) == (1, 1)
    for t in (5.0, 5.2):  # no chunk and no state for seconds: the same hold twice, its numbers changing
        assert op.record_tick(op.adapter.step(t)).startswith("hold: ")
    warnings = op.take_tick_warnings()
    assert len(warnings) == 1 and warnings[0][0].startswith("hold:") and op.take_tick_warnings() == []
    assert (op.ticks, op.commands_sent) == (3, 1)


def test_unset_limits_refuse_arming_and_answers_say_the_state():
    op = make(unset=["workspace_low"])
    assert "safety limits not set: workspace_low" in op.unset_limits_error()
    assert "never taken from defaults" in op.arming_refusal()
    assert make().unset_limits_error() == "" and make().arming_refusal() == ""
    assert op.dry_run_answer("") == (True, "dry-run ON (commands computed, not sent)")
    assert op.dry_run_answer("no") == (False, "refused: no; dry-run ON (commands computed, not sent)")
    assert AdapterOperation.reset_estop_answer("not ready") == (False, "refused: not ready")


def test_diagnostics_count_clamps_per_report():
    op = make()
    assert op.diagnostics("not set")[:2] == (None, "starting")
    op.adapter.set_dry_run(False)
    big = ActionChunk(stamp_ns=0, actions=np.tile([1.0, 0, 0, 0, 0, 0, 1.0], (4, 1)), step_period_s=0.2,
                      dimension_names=DELTA_ACTION_NAMES)
    op.add_chunk(big, 0.0)
    op.record_tick(op.adapter.step(0.0))
    status, message, values = op.diagnostics("SCHED_FIFO 80")
    assert status is ControlStatus.MOVE and message == "move"
    assert values["safety_clamps"] == 1 and "per-step delta clamped" in values["last_clamp"]
    assert values["scheduling"] == "SCHED_FIFO 80" and values["dry_run"] is False
    assert op.diagnostics("")[2]["safety_clamps"] == 0


def test_joint_index_refuses_duplicated_names():
    assert joint_index(["a", "b"]) == {"a": 0, "b": 1}
    with pytest.raises(ValueError, match=r"duplicated joint names \['a'\]"):
        joint_index(["a", "b", "a"])


def test_operator_requests_arm_stop_and_switch_through_the_core():
    op = make(unset=["workspace_low"])
    errors = op.start_errors(False, 0.0)  # dry_run:=false without limits: both errors, still in dry-run
    assert len(errors) == 2 and errors[1].startswith("dry_run:=false refused: safety limits not set")
    assert op.request_dry_run(False, 0.0)[0] is False and op.dry_run
    op = make()
    assert op.start_errors(True, 0.0) == [] and op.request_dry_run(False, 0.0) == (True, "dry-run OFF (commands go to the robot)")
    stops = []
    assert op.operator_estop(lambda: stops.append("armed")) == AdapterOperation.ESTOP_ANSWER and stops == ["armed"]
    op.stop_if_armed(lambda: stops.append("shutdown"))  # e-stopped: already stopped
    assert op.adapter.supervisor.estopped and stops == ["armed"]
    assert op.request_reset_estop() == (True, "e-stop reset; holding at the measured state")
    op.stop_if_armed(lambda: stops.append("shutdown"))
    assert stops == ["armed", "shutdown"]


def test_source_parameters_switch_and_refuse():
    op = make()
    change = [Parameter(name="dry_run", value=True), Parameter(name="source", value=TELEOP_SOURCE)]
    refusal, switches = op.source_parameters(change)
    assert refusal == "" and len(switches) == 1 and op.adapter.source == TELEOP_SOURCE
    change = [Parameter(name="source", value="policy"), Parameter(name="source", value="joystick")]
    refusal, switches = op.source_parameters(change)
    assert "unknown chunk source" in refusal and switches[0].startswith("chunk source teleop -> policy")


def test_the_last_policy_publisher_lost_holds():
    op = make()
    op.adapter.set_dry_run(False)
    op.add_chunk(chunk(), 0.0)
    assert op.adapter.step(0.0).status is ControlStatus.MOVE
    assert op.policy_liveliness(1, 1) == "" and op.policy_liveliness(1, -1) == ""  # one publisher still alive
    why = "policy chunk publisher lost (DDS liveliness: link down or policy gone)"
    assert op.policy_liveliness(0, -1) == f"hold: {why}"
    op.adapter.update_joint_state(START_Q, 0.2, gripper_open=True, now=0.2)
    out = op.adapter.step(0.2)
    assert out.status is ControlStatus.HOLD and out.reason == why
