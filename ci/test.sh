#!/usr/bin/env bash
# The project's one test command (README): installs what the tests need and runs all of them.
# Creates or reuses the virtualenv .venv, installs moxmail with its test extras, installs the
# Debian packages listed in ci/debian-packages.txt when running as root and they are missing,
# then runs ruff, mypy and pytest over tests/ and conformance/. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${MOX_VENV:-.venv}
PY=${PYTHON:-python3}

step() { printf '\n== %s\n' "$*"; }

step "python environment ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
	"$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'

step "debian packages"
mapfile -t wanted < <(grep -v '^\s*#' ci/debian-packages.txt | grep -v '^\s*$' || true)
missing=()
for p in "${wanted[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "installing: ${missing[*]}"
		apt-get update -q >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
	else
		echo "missing debian packages (run as root to install them): ${missing[*]}" >&2
		exit 1
	fi
else
	echo "all present: ${wanted[*]:-none needed}"
fi

step "containers (interop tests)"
ci/containers-setup.sh

step "ruff"
"$VENV/bin/ruff" check mox tests conformance bench

step "mypy"
"$VENV/bin/mypy"

step "pytest"
set +e
"$VENV/bin/pytest" -q -p no:cacheprovider tests conformance "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
	echo "pytest collected no tests: that is a failure" >&2
	exit 1
fi
exit $rc
