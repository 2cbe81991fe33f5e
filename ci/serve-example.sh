#!/usr/bin/env bash
# Installs moxmail into .venv and starts it on an embedded local configuration (written to
# ./local on first run): account mox@localhost, ports 1025 (SMTP), 1587 (submission),
# 1465 (submissions), 1143 (IMAP), 1993 (IMAPS), 1080/1443 (HTTP/HTTPS) on localhost.
# Stop with Ctrl-C or, from another shell, .venv/bin/mox -config local/config/mox.conf stop.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MOX_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
	"${PYTHON:-python3}" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e .
conf=$("$VENV/bin/python" -m mox.config.example "${MOX_LOCAL_DIR:-local}")
echo "config: $conf"
exec "$VENV/bin/mox" -config "$conf" serve
