#!/usr/bin/env bash
# Runs every benchmark in bench/ (bench/run_all.py: --quick, --only, --host ..., see --help) and writes
# bench/results/<UTC date>-<time>.jsonl and .md.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" bench/run_all.py "$@"
