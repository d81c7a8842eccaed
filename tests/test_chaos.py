"""The crash loop of bench/chaos.py, short: kills and restarts lose nothing."""

import re

import pytest

from bench import chaos


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_crash_loop_loses_no_notification():
    lines = []
    code = chaos.main(["--seconds", "15", "--seed", "20261203"], out=lines.append)
    text = "\n".join(lines)
    kills = re.search(r"^\s+kills\s+(\d+) ", text, re.M)
    missing = re.search(r"^\s+missing\s+(\d+)$", text, re.M)
    paid = re.search(r"^\s+orders paid\s+(\d+)$", text, re.M)
    assert kills and missing and paid, text
    assert int(kills.group(1)) >= 3, text
    assert int(paid.group(1)) > 0, text
    assert int(missing.group(1)) == 0, text
    assert code == 0, text
