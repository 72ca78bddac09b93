"""hifill_tf.cli_util: the shared duration format of every progress line and summary."""

import math

from hifill_tf.cli_util import format_seconds


def test_format_seconds_hand_cases():
    assert format_seconds(0) == "0.0 s"
    assert format_seconds(3.25) == "3.2 s"
    assert format_seconds(59.94) == "59.9 s"
    assert format_seconds(60) == "1m00s"
    assert format_seconds(125.4) == "2m05s"
    assert format_seconds(3599.6) == "1h00m"  # rounds to 3600 s
    assert format_seconds(3725) == "1h02m"
    assert format_seconds(1474 * 3600 + 128) == "1474h02m"  # a training ETA
    assert format_seconds(math.inf) == "?" and format_seconds(math.nan) == "?"
