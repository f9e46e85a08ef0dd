"""E-stop stop time (issue #12 item 8), on the UR controller stand-in (modelled like the device:
latency, servoStop deceleration): the TCP moving at the speed cap is at rest within two control
periods of the e-stop call."""
from support.estop import ur_stop_time


def test_ur5_estop_stops_within_two_control_periods():
    stop_s, speed, travel = ur_stop_time()
    period = 1 / 125
    assert speed > 0.2, f"the TCP was not moving at the cap ({speed:.3f} m/s)"
    assert stop_s <= 2 * period, f"at rest {stop_s * 1e3:.1f} ms after the e-stop (two periods: {2e3 * period:.0f} ms)"
    assert travel < 0.003
