"""The buffer's stale/fresh log lines: the first change at once, a flapping stream summarized."""
from octo_ros.perception.freshness_log import FreshnessLog


def _run(log, events):
    """events: (time, stale stream or None) at 10 Hz ticks; the lines logged, with their times."""
    return [(t, level, text) for t, stream in events for level, text in log.update(t, stream, f"{stream} stale")]


def test_a_single_outage_is_logged_when_it_starts_and_ends():
    ticks = [(i / 10, "image_primary" if 20 <= i < 80 else None) for i in range(200)]
    lines = _run(FreshnessLog(period_s=5.0), ticks)
    assert [(t, level) for t, level, _ in lines] == [(2.0, "warning"), (8.0, "info")]
    assert "image_primary stale" in lines[0][2] and "fresh again after 6.0 s" in lines[1][2]


def test_flapping_is_summarized_once_per_period():
    # stale 0.3 s of every second for 20 s: 40 changes
    ticks = [(i / 10, "image_primary" if i % 10 >= 7 else None) for i in range(200)]
    lines = _run(FreshnessLog(period_s=5.0), ticks)
    assert len(lines) <= 1 + 20 / 5
    first, *summaries = lines
    assert first[:2] == (0.7, "warning")
    assert all(level == "warning" and "went stale" in text for _, level, text in summaries)
    t, _, text = summaries[0]
    assert t >= first[0] + 5.0
    # onsets at 0.7, 1.7, ... 5.7 (the tick of the summary); stale 0.3 s after each but the last
    assert "went stale 6 times in the last 5.0 s" in text and "image_primary 6x" in text and "stale now" in text
    assert "stale 1.5 s in all" in text
