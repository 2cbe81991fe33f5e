#!/usr/bin/env bash
# Build the moxmail image from docker/Dockerfile: wheels of moxmail and its dependencies
# are made on this machine (pip wheel) and copied into the build context, so the build
# itself needs no access to PyPI. Uses docker, or podman when no docker daemon answers (ENGINE=... to choose).
#
#   docker/build.sh [TAG]     (default moxmail:latest)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
tag=${1:-moxmail:latest}
# ENGINE overrides; else docker when its daemon answers, else podman.
engine=${ENGINE:-}
if [ -z "$engine" ]; then
	if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
		engine=docker
	elif command -v podman >/dev/null; then
		engine=podman
	else
		echo "no usable docker daemon and no podman" >&2
		exit 1
	fi
fi
py=${PYTHON:-$repo/.venv/bin/python}
[ -x "$py" ] || py=python3

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/"
"$py" -m pip wheel -q --disable-pip-version-check --wheel-dir "$ctx/wheels" "$repo"
mkdir "$ctx/moxmail-wheel"
mv "$ctx"/wheels/moxmail-*.whl "$ctx/moxmail-wheel/"
"$engine" build -t "$tag" "$ctx"
