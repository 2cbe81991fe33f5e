#!/usr/bin/env bash
# The interop network by hand, for local two-instance testing; the same implementation as the
# conformance tests' fixture (conformance/interop_net.py). As root, after ci/containers-setup.sh.
#
#   interop/run.sh up          bring it up (builds images when their inputs changed), print env
#   interop/run.sh env         print hosts' addresses, config paths, accounts, CA as shell variables
#   interop/run.sh shell HOST  a shell in a host's container (dns, acme, mox1, mox2, postfix, client, localserve)
#   interop/run.sh logs HOST   a host's container log
#   interop/run.sh down        take it down (also removes leftovers of crashed runs)
#   interop/run.sh test [ARGS] run the interop conformance tests (they bring up their own network)
#
# State (configs, keys, zones, Postfix's maillog) is in $MOX_INTEROP_STATE, default
# /tmp/moxmail-interop; the network's process writes its log to $MOX_INTEROP_STATE.log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
py=${PYTHON:-$repo/.venv/bin/python}
state=${MOX_INTEROP_STATE:-/tmp/moxmail-interop}
pidfile=$state.pid

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
container() {
	[ -f "$state/env" ] || { echo "not up (no $state/env)" >&2; exit 1; }
	# shellcheck disable=SC1091
	. "$state/env"
	local var="MOX_INTEROP_${1^^}_CONTAINER"
	[ -n "${!var:-}" ] || { echo "unknown host $1" >&2; exit 1; }
	echo "${!var}"
}

case "${1:-}" in
up)
	if running; then
		cat "$state/env"
		exit 0
	fi
	"$py" "$repo/conformance/interop_net.py" cleanup
	rm -rf "$state"
	mkdir -p "$state"
	setsid "$py" "$repo/conformance/interop_net.py" serve "$state" >"$state.log" 2>&1 &
	echo $! >"$pidfile"
	for _ in $(seq 1 6000); do
		if [ -f "$state/env" ]; then
			cat "$state/env"
			exit 0
		fi
		if ! running; then
			echo "bring-up failed, log $state.log:" >&2
			tail -50 "$state.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "not up after 600s, log $state.log" >&2
	exit 1
	;;
down)
	if running; then
		pid=$(cat "$pidfile")
		kill -TERM "$pid"
		for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -f "$pidfile"
	"$py" "$repo/conformance/interop_net.py" cleanup
	;;
env)
	[ -f "$state/env" ] && running || { echo "not up" >&2; exit 1; }
	cat "$state/env"
	;;
shell)
	c=$(container "${2:?usage: run.sh shell HOST}")
	exec podman exec -it "$c" bash
	;;
logs)
	c=$(container "${2:?usage: run.sh logs HOST}")
	exec podman logs "$c"
	;;
test)
	shift
	cd "$repo"
	exec "$repo/.venv/bin/pytest" -q -p no:cacheprovider conformance/test_interop_*.py "$@"
	;;
*)
	sed -n '2,14p' "$0" >&2
	exit 2
	;;
esac
