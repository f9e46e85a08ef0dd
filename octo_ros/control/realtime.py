"""What a control loop thread needs from the OS to keep its period while inference runs beside it.

On a 2-core robot PC the policy's matrix multiplies keep every core busy; a control loop at
normal priority then waits for a time slice (the UR5 adapter at 125 Hz saw 8 % of its ticks late).
With ``SCHED_FIFO`` the kernel runs the loop's thread the moment its timer expires, preempting
any normal thread. Linux only; elsewhere (or unprivileged) the loop runs at normal priority and
``Scheduling.reason`` says why.
"""
from __future__ import annotations

import gc
import os
import resource
import sys
from dataclasses import dataclass

# SCHED_FIFO priority asked for: above every normal thread (DDS and inference run SCHED_OTHER),
# below the kernel's own threads at 99 (watchdog, migration), as the ROS 2 real-time guides advise.
REALTIME_PRIORITY = 80
# Longest a thread of this process may hold the GIL while the control thread waits for it (Python's
# default is 5 ms, most of a UR5 period).
GIL_SWITCH_INTERVAL_S = 0.0005


@dataclass(frozen=True)
class Scheduling:
    policy: str  # "SCHED_FIFO" or "SCHED_OTHER"
    priority: int  # FIFO priority, or the nice value under SCHED_OTHER
    reason: str = ""  # why the loop is not real-time ("" when it is)

    @property
    def realtime(self) -> bool:
        return self.policy == "SCHED_FIFO"

    def describe(self) -> str:
        if self.realtime:
            return f"control loop thread: SCHED_FIFO priority {self.priority}"
        return f"control loop thread: not real-time ({self.reason}); nice {self.priority}"


def allowed_fifo_priority() -> int:
    """The highest SCHED_FIFO priority this process may take (0: none)."""
    if not hasattr(os, "sched_setscheduler"):
        return 0
    limit = os.sched_get_priority_max(os.SCHED_FIFO)
    if os.geteuid() != 0:
        soft, _ = resource.getrlimit(resource.RLIMIT_RTPRIO)
        limit = min(limit, soft if soft != resource.RLIM_INFINITY else limit)
    return max(limit, 0)


def validate_priority(priority: int) -> int:
    """``priority`` if it is 0 (off) or a SCHED_FIFO priority, else ValueError naming the range."""
    top = os.sched_get_priority_max(os.SCHED_FIFO) if hasattr(os, "sched_get_priority_max") else 99
    if not 0 <= priority <= top:
        raise ValueError(f"realtime_priority {priority} is outside 0 (normal scheduling) .. {top}")
    return priority


def make_current_thread_realtime(priority: int = REALTIME_PRIORITY) -> Scheduling:
    """Move the calling thread to SCHED_FIFO at ``priority`` or the highest lower one allowed
    (``priority`` 0: stay at normal scheduling, e.g. below other real-time loops of the machine).

    Threads this thread starts afterwards inherit the policy: call it after the node's helper
    threads exist, right before the loop runs. Also freezes the objects allocated so far out of
    the garbage collector's reach (a full collection then scans only what the loop allocates) and
    shortens the GIL switch interval for the other threads of the process.
    """
    gc.freeze()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    if validate_priority(priority) == 0:
        return Scheduling("SCHED_OTHER", os.getpriority(os.PRIO_PROCESS, 0), "realtime_priority is 0")
    granted = min(priority, allowed_fifo_priority())
    if granted >= 1:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(granted))
            return Scheduling("SCHED_FIFO", granted)
        except OSError as err:  # EPERM in a container without CAP_SYS_NICE, ...
            reason = f"SCHED_FIFO refused: {err.strerror}"
    elif not hasattr(os, "sched_setscheduler"):
        reason = "no SCHED_FIFO on this OS"
    else:
        reason = ("RLIMIT_RTPRIO is 0: allow real-time priority for this user (rtprio in "
                  "/etc/security/limits.conf) or grant CAP_SYS_NICE")
    try:  # the next best thing: the lowest nice value permitted
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except OSError:
        pass
    return Scheduling("SCHED_OTHER", os.getpriority(os.PRIO_PROCESS, 0), reason)
