"""The benchmarks in bench/ still run: tiny sizes against a loopback mox serve, no timing assertions.

Runs the scripts as a user would (their own processes), pointing them with
--host/--port/--pid at one ``mox serve`` started here (the path used for other
servers), and bench/run_all.py in quick mode for two cheap benchmarks, one of
which starts its own server. Checks each prints the JSON rows and the Markdown
table it should, with positive numbers where there must be some.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))

from benchlib import MoxServe, format_table  # noqa: E402


@pytest.fixture(scope="module")
def server() -> Iterator[MoxServe]:
    with MoxServe() as m:
        yield m


def run_script(*args: str, timeout: float = 120) -> tuple[list[dict[str, Any]], str]:
    r = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return rows, r.stderr


def table_rows(stderr: str, title: str) -> list[list[str]]:
    """Cells of the data rows of the table with this title (after the blank, header and separator lines)."""
    lines = stderr.splitlines()
    start = lines.index(f"### {title}")
    body = []
    for ln in lines[start + 4 :]:
        if not ln.startswith("|"):
            break
        body.append([c.strip() for c in ln.strip("|").split("|")])
    return body


def test_format_table_aligns_and_marks_missing_values() -> None:
    text = format_table("t", [("a", "A"), ("b", "bee")], [{"a": 1.5, "b": None}, {"a": 1000.0, "b": "x"}])
    assert text.splitlines() == ["### t", "", "| A    | bee |", "|------|-----|", "| 1.5  | n/a |", "| 1000 | x   |"]


def test_smtp_deliver_against_running_server(server: MoxServe) -> None:
    port = str(server.ports.smtp)
    rows, err = run_script("bench/smtp_deliver.py", "--host", "127.0.0.1", "--port", port, "--pid", str(server.pid),
                           "--n", "12", "--conc", "3", "--rotate", "5")  # fmt: skip
    assert len(rows) == 1
    row = rows[0]
    assert row["bench"] == "smtp_smtp" and row["target"] == f"127.0.0.1:{port}" and row["errors"] == 0
    assert row["msgs_per_s"] > 0 and row["server_cpu_ms_per_msg"] >= 0 and row["server_mem_mb"] > 0
    cells = table_rows(err, "SMTP delivery throughput")
    assert len(cells) == 1 and cells[0][0] == f"127.0.0.1:{port}" and float(cells[0][4]) > 0


def test_smtp_submission_without_pid_reports_na(server: MoxServe) -> None:
    rows, err = run_script("bench/smtp_deliver.py", "--mode", "submit", "--host", "127.0.0.1",
                           "--port", str(server.ports.submission), "--n", "4", "--conc", "2")  # fmt: skip
    assert rows[0]["msgs_per_s"] > 0 and rows[0]["server_cpu_ms_per_msg"] is None
    assert "n/a" in table_rows(err, "SMTP submission (AUTH PLAIN) throughput")[0]


def test_imap_idle_and_connection_memory(server: MoxServe) -> None:
    rows, err = run_script("bench/imap_idle.py", "--host", "127.0.0.1", "--smtp-port", str(server.ports.smtp),
                           "--imap-port", str(server.ports.imap), "--pid", str(server.pid),
                           "--n", "3", "--conns", "4", "--settle", "0.1")  # fmt: skip
    lat = [r for r in rows if r["bench"] == "imap_idle_latency"]
    assert len(lat) == 1 and lat[0]["n"] == 3 and 0 < lat[0]["median_ms"] <= lat[0]["max_ms"]
    mem = {r["kind"]: r for r in rows if r["bench"] == "imap_idle_conns"}
    assert set(mem) == {"imap", "smtp"} and all(isinstance(r["kib_per_conn"], float) for r in mem.values())
    assert len(table_rows(err, "IMAP IDLE latency, end of SMTP DATA to untagged EXISTS")) == 1
    assert [c[1] for c in table_rows(err, "Memory per idle connection (server private memory growth / connections)")] == ["imap", "smtp"]


def test_imap_fetch_fills_and_measures_mailbox(server: MoxServe, tmp_path: Path) -> None:
    mbox = tmp_path / "small.mbox"
    mbox.write_bytes(b"".join(
        b"From bench@example.org Sat Jan  1 00:00:00 2022\nSubject: quarterly invoice %d\n\n>From here\nbody %d\n\n" % (i, i)
        for i in range(6)
    ))  # fmt: skip
    rows, err = run_script("bench/imap_fetch.py", "--host", "127.0.0.1", "--port", str(server.ports.imap),
                           "--mailbox", "Archive", "--fill", "--n", "6", "--mbox", str(mbox))  # fmt: skip
    assert rows[0]["command"] == "append 6 messages"
    cmds = [r["command"] for r in rows[1:]]
    assert cmds[0] == "select" and len(cmds) == 8 and 'uid search text "invoice"' in cmds
    assert all(r["messages"] == 6 and r["ms"] > 0 for r in rows[1:])
    assert len(table_rows(err, "IMAP commands on a large mailbox (wall ms as the client sees it)")) == 9


def test_run_all_quick(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "bench/run_all.py", "--quick", "--only", "smtp_2k_1,message_parse",
                        "--out-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert r.returncode == 0, r.stderr
    (jsonl,) = tmp_path.glob("*.jsonl")
    (md,) = tmp_path.glob("*.md")
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [x["run"] for x in rows] == ["smtp_2k_1", "message_parse"]
    smtp = rows[0]
    assert smtp["mode"] == "quick" and smtp["target"] == "mox serve" and smtp["stored"] == smtp["n"] > 0
    assert smtp["msgs_per_s"] > 0 and rows[1]["parse_msgs_per_s"] > 0
    text = md.read_text()
    assert "| smtp_2k_1 | ok |" in text and "| message_parse | ok |" in text
    assert "### SMTP delivery throughput" in text and "| mox serve |" in text
