#!/usr/bin/env bash
# IMAP FETCH/SEARCH/STORE timings with ../shared/bench/mailbench.py fetch on a 10,000-message INBOX
# imported from mailbench's mbox, against a real mox serve on ports 3025-3993 (loopback).
# MOX_DNS points at a closed loopback port: nothing here needs DNS, and no query may leave the machine.
set -e
cd "$(dirname "$0")/.."
D=$(mktemp -d)
.venv/bin/python -c "
from mox.config.example import write_local_config, LocalPorts
write_local_config('$D', ports=LocalPorts(3025,3587,3465,3143,3993,3080,3443,3081), ips=['127.0.0.1'], log_level='error')"
MBOX=${MBOX:-/tmp/mb10k.mbox}
[ -f "$MBOX" ] || python3 ../shared/bench/mailbench.py mbox --n 10000 --out "$MBOX" >/dev/null
.venv/bin/python - <<PY
import asyncio
from mox.config.load import load_config
from mox.store.deliver import open_config_account
from mox.store.password import make_secrets
async def m():
    acc = await open_config_account(load_config('$D/config/mox.conf'), 'mox')
    await acc.set_password_secrets(make_secrets('moxmoxmox').to_json()); await acc.close()
asyncio.run(m())
PY
MOX_DNS=127.0.0.1:9 .venv/bin/mox -config $D/config/mox.conf serve >$D/serve.log 2>&1 &
PID=$!
sleep 2
.venv/bin/mox -config $D/config/mox.conf import mbox mox Inbox  "$MBOX" | tail -1
timeout 300 python3 ../shared/bench/mailbench.py fetch --imap 3143 --pid $PID 2>&1 | tail -12
.venv/bin/mox -config $D/config/mox.conf stop
rm -rf $D
