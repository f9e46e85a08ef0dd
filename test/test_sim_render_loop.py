"""The simulators' render thread and episode-parameter check, without ROS (octo_ros.sim)."""
import threading
import time

from octo_ros.sim.render_loop import RenderLoop
from octo_ros.sim.tasks import episode_problem


def test_render_loop_paces_survives_a_failing_render_and_tears_down_on_its_thread():
    calls, errors, teardown = [], [], []
    started = threading.Event()

    def render(ctx):
        calls.append((ctx, threading.current_thread().name))
        started.set()
        if len(calls) == 2:
            raise RuntimeError("GL context lost")

    loop = RenderLoop(50.0, render, errors.append, setup=lambda: "ctx",
                      teardown=lambda ctx: teardown.append((ctx, threading.current_thread().name)))
    loop.start()
    assert started.wait(5.0)
    time.sleep(0.3)
    loop.stop()
    n = len(calls)
    time.sleep(0.1)
    assert len(calls) == n  # stopped: no render after stop()
    assert 3 <= n <= 30  # about 50 Hz over 0.3 s (a loaded machine renders fewer), never a busy loop
    assert all(c == ("ctx", "sim-render") for c in calls) and teardown == [("ctx", "sim-render")]
    assert [str(e) for e in errors] == ["GL context lost"] and loop.last_render_s >= 0


def test_episode_parameters_are_checked_against_the_simulators_tasks():
    tasks = ("reach_block", "lift_cube")
    assert episode_problem(tasks, "reach_block", 3) == "" and episode_problem(tasks, "", None) == ""
    assert episode_problem(tasks, "stack", None) == ("episode_task 'stack' is not a task of this simulator "
                                                     "(known: reach_block, lift_cube)")
    assert episode_problem(tasks, None, -1) == "episode_seed must be >= 0, got -1"
