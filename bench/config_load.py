"""Benchmark: parsing and validating a large domains.conf (what every reload and every config edit costs).

Writes a local config with N accounts (one address each) over D domains into a
temporary directory, then times parse, validate and write. Prints one JSON line.

    .venv/bin/python bench/config_load.py [--accounts 2000] [--domains 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Report

from mox.config import model, sconf
from mox.config.edit import make_account_config
from mox.config.example import write_local_config
from mox.config.load import load_config, parse_dynamic, prepare_dynamic, reload_dynamic


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--domains", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    report = Report("Config: parse, validate, reload and write of domains.conf (best of rounds)")
    with tempfile.TemporaryDirectory() as tmp:
        conf = write_local_config(tmp, ips=["127.0.0.1"])
        cfg = load_config(conf)
        dyn = cfg.dynamic
        for d in range(args.domains):
            dyn.Domains[f"d{d}.example"] = model.Domain()
        for i in range(args.accounts):
            dom = f"d{i % args.domains}.example"
            dyn.Accounts[f"user{i}"] = make_account_config(f"user{i}@{dom}", dom)
        text = sconf.write(dyn, header=model.DYNAMIC_HEADER)
        cfg.dynamic_path.write_text(text)
        path: Path = cfg.dynamic_path

        def best(fn: object) -> float:
            times = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                fn()  # type: ignore[operator]
                times.append(time.perf_counter() - t0)
            return min(times)

        parsed, lines = parse_dynamic(path)
        result = {
            "bench": "config_load",
            "accounts": args.accounts,
            "domains": args.domains,
            "bytes": len(text),
            "parse_ms": round(best(lambda: parse_dynamic(path)) * 1000, 1),
            "validate_ms": round(best(lambda: prepare_dynamic(parsed, lines, path, cfg.static)) * 1000, 1),
            "reload_ms": round(best(lambda: reload_dynamic(cfg)) * 1000, 1),
            "write_ms": round(best(lambda: sconf.write(parsed, header=model.DYNAMIC_HEADER)) * 1000, 1),
        }
        report.add(result)
    report.table()


if __name__ == "__main__":
    main()
