#!/usr/bin/env bash
# Set-up for the container interop tests (conformance/test_interop_*.py), idempotent, as root.
#
# 1. Debian packages podman, runc, debootstrap (ci/debian-packages.txt lists them too).
# 2. A containers.conf drop-in with the two settings this machine type needs (runc instead of
#    crun, container ulimits the sandbox allows); see ../shared/containers/README.md.
# 3. The base image localhost/debian:bookworm-slim (also tagged docker.io/library/debian:bookworm-slim
#    so an unmodified `FROM debian:bookworm-slim` finds it), made with debootstrap when missing.
#    No registry is reachable here, so nothing is pulled. The rootfs tarball is cached in
#    $MOX_CONTAINERS_CACHE (default /var/cache/moxmail-containers) so a lost image store is
#    re-imported in seconds.
#
# Not done here: the podman API socket; the test session starts and stops it
# (conformance/interop_net.py). Not root: prints why and exits 0 (the interop tests skip).
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
	echo "containers-setup: not root, skipping (interop tests will be skipped)"
	exit 0
fi

CACHE=${MOX_CONTAINERS_CACHE:-/var/cache/moxmail-containers}
BASE=localhost/debian:bookworm-slim
start=$(date +%s.%N)

need=()
for p in podman runc debootstrap; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "containers-setup: installing ${need[*]}"
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

conf=/etc/containers/containers.conf.d/50-moxmail-sandbox.conf
want='[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
[engine]
runtime = "runc"'
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$want" ]; then
	mkdir -p "$(dirname "$conf")"
	printf '%s\n' "$want" >"$conf"
fi

if ! podman image exists "$BASE"; then
	mkdir -p "$CACHE"
	tarball=$CACHE/debian-bookworm-slim.tar
	if [ ! -s "$tarball" ]; then
		mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
		mirror=${mirror:-http://deb.debian.org/debian}
		rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
		trap 'rm -rf "$rootfs"' EXIT
		echo "containers-setup: debootstrap bookworm from $mirror"
		debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 ||
			{ tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
		# apt sources like the host's (bookworm, -updates, -security) so apt-get works in builds.
		rm -f "$rootfs/etc/apt/sources.list"
		if [ -f /etc/apt/sources.list.d/debian.sources ]; then
			cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources"
		fi
		# Keep it small: no docs, man pages, locales, apt lists or caches.
		rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
			"$rootfs"/usr/share/locale/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
			"$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
		printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\npath-include /usr/share/locale/locale.alias\n' \
			>"$rootfs/etc/dpkg/dpkg.cfg.d/01-nodoc"
		tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
		mv "$tarball.tmp" "$tarball"
		rm -rf "$rootfs"
		trap - EXIT
	fi
	echo "containers-setup: importing $BASE"
	podman import -q --change 'CMD ["bash"]' \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		"$tarball" "$BASE" >/dev/null
fi
podman image exists docker.io/library/debian:bookworm-slim || podman tag "$BASE" docker.io/library/debian:bookworm-slim

end=$(date +%s.%N)
awk -v s="$start" -v e="$end" 'BEGIN { printf "containers-setup: ready in %.1fs\n", e - s }'
