"""Real-time scheduling of the adapters' control loop thread (octo_ros.control.realtime)."""
import os
import resource
import threading

import pytest

from octo_ros.control.realtime import REALTIME_PRIORITY, make_current_thread_realtime, validate_priority


def _in_thread(fn):
    result = {}
    t = threading.Thread(target=lambda: result.update(value=fn(), policy=os.sched_getscheduler(0),
                                                      param=os.sched_getparam(0).sched_priority))
    t.start()
    t.join()
    return result


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_FIFO needs root or RLIMIT_RTPRIO here; CI runs as root")
def test_privileged_thread_gets_fifo_and_the_rest_of_the_process_keeps_normal_scheduling():
    result = _in_thread(make_current_thread_realtime)
    assert result["value"].realtime and result["value"].priority == REALTIME_PRIORITY
    assert result["policy"] == os.SCHED_FIFO and result["param"] == REALTIME_PRIORITY
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # only the calling thread moved


def test_priority_zero_keeps_normal_scheduling_and_says_so():
    result = _in_thread(lambda: make_current_thread_realtime(0))
    assert not result["value"].realtime and result["policy"] == os.SCHED_OTHER
    assert "realtime_priority is 0" in result["value"].describe()


@pytest.mark.parametrize("bad", [-1, 100, 1000])
def test_out_of_range_priority_is_refused_naming_the_range(bad):
    with pytest.raises(ValueError, match=r"realtime_priority .* outside 0 \(normal scheduling\) \.\. 99"):
        validate_priority(bad)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_unprivileged_process_without_rtprio_falls_back_and_says_how_to_allow_it():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: an ordinary user with RLIMIT_RTPRIO 0, as on a stock workstation
        try:
            resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
            os.setgid(65534)
            os.setuid(65534)
            s = make_current_thread_realtime()
            os.write(write, f"{s.realtime}|{os.sched_getscheduler(0)}|{s.describe()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        realtime, policy, text = f.read().split("|", 2)
    os.waitpid(pid, 0)
    assert realtime == "False" and int(policy) == os.SCHED_OTHER
    assert "RLIMIT_RTPRIO is 0" in text and "rtprio" in text
