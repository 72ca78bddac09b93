"""hifill_tf.console (the shared duration format) and hifill_tf.imports (the imports a front
end skips)."""

import json
import math
import subprocess
import sys

from hifill_tf.console import format_seconds
from hifill_tf.imports import UNUSED_BY_INFERENCE


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


def test_skip_unused_imports_makes_them_unimportable():
    # In a child process: the blocking lasts for the process, so it must not touch this one.
    code = ("import json\n"
            "from hifill_tf.imports import UNUSED_BY_INFERENCE, skip_unused_imports\n"
            "skip_unused_imports()\n"
            "failed = []\n"
            "for name in UNUSED_BY_INFERENCE:\n"
            "    try:\n"
            "        __import__(name)\n"
            "    except ImportError:\n"
            "        failed.append(name)\n"
            "print(json.dumps(failed))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == list(UNUSED_BY_INFERENCE)
    assert "pandas" in UNUSED_BY_INFERENCE and "tensorflow" not in UNUSED_BY_INFERENCE
