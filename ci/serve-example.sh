#!/usr/bin/env bash
# The README's run command: installs moxmail into .venv and starts `mox localserve` on the
# directory ./local (created on first run): account mox@localhost with password moxmoxmox, admin
# password moxadmin, a self-signed certificate, and the usual ports + 1000 on localhost: SMTP 1025,
# submission 1587, submissions 1465, IMAP 1143, IMAPS 1993, HTTP 1080, HTTPS 1443, metrics 1081.
# Stop with Ctrl-C or, from another shell, .venv/bin/mox -config local/mox.conf stop.
# MOX_LOCAL_DIR overrides the directory; MOX_VENV the virtualenv; MOX_SKIP_INSTALL=1 skips the
# pip install into an existing virtualenv (tests).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MOX_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
	"${PYTHON:-python3}" -m venv "$VENV"
fi
if [ "${MOX_SKIP_INSTALL:-}" != 1 ] || [ ! -x "$VENV/bin/mox" ]; then
	"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e .
fi
exec "$VENV/bin/mox" localserve -dir "${MOX_LOCAL_DIR:-local}"
