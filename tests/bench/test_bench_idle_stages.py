"""bench/imap_idle_stages.py still runs: every stage of the DATA path is timed, in order, no timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def test_idle_stages_script() -> None:
    r = subprocess.run([sys.executable, "bench/imap_idle_stages.py", "--n", "5"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    stages = {x["stage"]: x for x in rows if x["bench"] == "imap_idle_stages"}
    legs = {x["stage"]: x for x in rows if x["bench"] == "imap_idle_legs"}
    # Each wrapped stage was seen for every measured delivery (5 minus 3 warm-up).
    for name in ("smtp: final dot read", "check: dmarc lookup end", "store: fsync file end", "store: COMMIT end",
                 "events: publish", "imap: EXISTS written", "smtp: deliver end"):  # fmt: skip
        assert stages[name]["n"] == 2, name
    assert stages["smtp: final dot read"]["median_ms"] == 0
    assert stages["store: COMMIT end"]["median_ms"] <= stages["events: publish"]["median_ms"] <= stages["imap: EXISTS written"]["median_ms"]
    assert legs["total (client)"]["median_ms"] > 0
    assert "### IDLE latency per stage" in r.stderr
    assert "not found" not in r.stderr  # every wrapped function still exists
