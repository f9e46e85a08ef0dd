"""E-stop stop time (issue #12 item 8) on the devices' stand-ins, modelled like the devices: the UR
controller stand-in (latency, servoStop deceleration) with the TCP moving at the speed cap, and the
xs_sdk driver stand-in behind the WidowX adapter with the joints at their velocity limits: each arm
is at rest within two control periods of the e-stop call. (The bimanual followers' figure is
printed by bench/hostile.py.)"""
from support.estop import ur_stop_time, widowx_stop_time


def test_ur5_estop_stops_within_two_control_periods():
    stop_s, speed, travel = ur_stop_time()
    period = 1 / 125
    assert speed > 0.2, f"the TCP was not moving at the cap ({speed:.3f} m/s)"
    assert stop_s <= 2 * period, f"at rest {stop_s * 1e3:.1f} ms after the e-stop (two periods: {2e3 * period:.0f} ms)"
    assert travel < 0.003


def test_widowx_estop_stops_within_two_control_periods():
    stop_s, speed, travel, period = widowx_stop_time()
    assert speed > 1.0, f"the arm was not moving fast ({speed:.2f} rad/s)"
    assert stop_s <= 2 * period, f"at rest {stop_s * 1e3:.1f} ms after the e-stop (two periods: {2e3 * period:.0f} ms)"
    assert travel < 0.05, f"{travel:.3f} rad travelled after the e-stop"
