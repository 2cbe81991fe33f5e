#!/usr/bin/env bash
# Runs every benchmark in bench/ and appends its JSON lines to bench/results/<UTC date>.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p bench/results
out="bench/results/$(date -u +%Y-%m-%d).jsonl"
"$PY" bench/config_load.py --accounts 2000 --domains 20 | tee -a "$out"
"$PY" bench/ctl_stream.py --size-mb 200 | tee -a "$out"
"$PY" bench/message_parse.py | tee -a "$out"
"$PY" bench/store_deliver.py --threads 100000 | grep '^{' | tee -a "$out"
"$PY" bench/import_mbox.py --runs 3 | tee -a "$out"
"$PY" bench/smtp_deliver.py --mode smtp --n 2000 --conc 16 | tee -a "$out"
"$PY" bench/smtp_deliver.py --mode smtp --n 500 --conc 1 | tee -a "$out"
"$PY" bench/smtp_deliver.py --mode smtp --n 400 --conc 16 --size 102400 | tee -a "$out"
"$PY" bench/smtp_deliver.py --mode submit --n 1000 --conc 8 | tee -a "$out"
"$PY" bench/smtp_conns.py --n 1000 | tee -a "$out"
bash bench/imap_fetch.sh | tee -a "$out"
echo "results appended to $out"
