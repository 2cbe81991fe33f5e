#!/bin/sh
# The dns host of the interop network (conformance/interop_net.py wrote /state).
# Makes one DNSSEC key (a CSK) per signed zone with keymgr before knotd starts, so the DS
# records are known: the children's go into the parent zone example., the parent's becomes
# unbound's trust anchor. Then knotd (127.0.0.1:53, signs at load) in the background and
# unbound (the container's address, validating) in the foreground.
set -eu
S=/state
C="$S/knot.conf"
mkdir -p "$S/knot/db" "$S/knot/run"
ds() { keymgr -c "$C" "$1." ds | grep " DS [0-9]* 13 2 "; }
for z in $(cat "$S/signed-children") example; do
	keymgr -c "$C" "$z." generate algorithm=ecdsap256sha256 ksk=yes zsk=yes >/dev/null
done
for z in $(cat "$S/signed-children"); do
	ds "$z" >>"$S/knot/zones/example.zone"
done
printf 'trust-anchor: "%s"\n' "$(ds example)" >"$S/trust-anchor.conf"
knotd -c "$C" &
# Readiness over TCP: refused at once while knot is not listening (UDP would wait out a timeout).
i=0
until kdig @127.0.0.1 +tcp +time=1 +retry=0 example. SOA >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 100 ] || { echo "knot did not answer within 10s" >&2; exit 1; }
	sleep 0.1
done
echo "dns.sh: knot serving, starting unbound"
exec unbound -d -c "$S/unbound.conf"
