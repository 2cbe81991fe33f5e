"""The interop network: real containers on an internal podman network, driven by testcontainers.

Hosts (one container each, all labelled ``moxmail.interop=1``, on an internal network in
198.51.100.0/24 that nothing routes out of):

- ``dns``: knot (on the container's 127.0.0.1) serving the DNSSEC-signed zones ``example.``
  (parent), ``mox1.example.``, ``mox2.example.`` and ``postfix.example.`` plus unsigned reverse zones, and
  unbound on the container's address validating with the test trust anchor (``interop/dns.sh``);
- ``postfix``: Postfix for ``postfix.example`` with ``smtp_tls_security_level = dane``
  (``interop/postfix.sh``);
- ``mox2``: the user-facing image from ``docker/Dockerfile`` running ``mox serve`` for
  ``mox2.example`` with a config written here by the project's own config code;
- ``mox1``: the same image, ``mox serve`` for ``mox1.example`` with certificates from pebble (ACME,
  tls-alpn-01), started once pebble answers;
- ``acme``: pebble (ACME CA) at https://acme.example:14000/dir, its HTTPS certificate from the test CA, its
  issuing root (new at each start) saved as acme/root.pem;
- ``localserve``: the same image running ``mox localserve`` (its own config, ports + 1000).

Every key is made at set-up: a test CA and the TLS certificates it signs, DKIM keys (the DNSSEC
keys are made by knot's keymgr in the dns container). Zone records are derived from the mox
config and those keys (MX, A, SPF, DKIM, DMARC, TLSRPT, TLSA 3 1 1 of mox2's certificate, MTA-STS).

Images are built with ``podman build`` once and tagged by a hash of their inputs, so a later
run with unchanged inputs builds nothing. The podman API socket that testcontainers talks to
is started by :func:`start_network` and stopped at the end. Leftover containers and networks
carrying the label are removed first.

Use it as a context manager (the pytest fixture ``interop`` below does)::

    with start_network(state_dir) as net:
        net.hosts["mox2"].ip, net.ca_file, net.exec("postfix", ["postqueue", "-p"])
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import imaplib
import ipaddress
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
INTEROP = REPO / "interop"
LABEL = "moxmail.interop"
# The PID of the process that owns a run's containers and network: leftovers are those whose owner is gone.
LABEL_PID = "moxmail.interop.pid"
CACHE = Path(os.environ.get("MOX_CONTAINERS_CACHE", "/var/cache/moxmail-containers"))
BASE_IMAGE = "localhost/debian:bookworm-slim"

# Before testcontainers is imported anywhere: its settings are read at import.
# Ryuk (its reaper container) cannot be pulled here; we clean up ourselves, by our label.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
# This VM has /.dockerenv, which otherwise makes testcontainers look for a container host.
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")

# Address of each host in the /27 of a run: network base + offset.
OFFSETS = {"gateway": 1, "dns": 2, "acme": 4, "mox1": 11, "mox2": 12, "postfix": 13, "client": 20, "localserve": 30}
ACME_HOST = "acme.example"
# A /27 per run (hosts at offsets up to 30): eight runs at a time, e.g. several test sessions.
SUBNETS = [ipaddress.IPv4Network(f"198.51.100.{n}/27") for n in range(0, 256, 32)]
# The IPv6 /64 paired with each /27 (same index), for dual stack.
SUBNETS6 = [ipaddress.IPv6Network(f"2001:db8:100:{i}::/64") for i in range(len(SUBNETS))]
REVERSE_ZONE = "100.51.198.in-addr.arpa."


def reverse_zone6(net6: ipaddress.IPv6Network) -> str:
    """The ip6.arpa zone of a /64, e.g. 1.0.0.0.0.0.1.0.8.b.d.0.1.0.0.2.ip6.arpa."""
    return ".".join(net6.network_address.reverse_pointer.split(".")[16:]) + "."


def reverse_owner6(ip6: str) -> str:
    """The owner name of ip6's PTR record relative to its /64's reverse zone."""
    return ".".join(ipaddress.IPv6Address(ip6).reverse_pointer.split(".")[:16])

CLIENT_HOST = "client.example"
MOX1_DOMAIN = "mox1.example"
MOX1_HOST = "mail.mox1.example"
MOX1_ACCOUNTS = {"mjl": ("mjl@mox1.example", "interop-mox1-pw")}
MOX2_DOMAIN = "mox2.example"
MOX2_HOST = "mail.mox2.example"
POSTFIX_DOMAIN = "postfix.example"
POSTFIX_HOST = "mail.postfix.example"
# Accounts on mox2: name -> (address, password).
MOX2_ACCOUNTS = {"mjl": ("mjl@mox2.example", "interop-mjl-pw"), "other": ("other@mox2.example", "interop-other-pw")}
# MTA-STS (RFC 8461) on mox2: an enforced policy for mox2.example listing its MX, and for the
# domain below (a second domain of mox2 with mox2's MX) one whose MX pattern matches no MX host,
# so senders enforcing it must not deliver. Policies are served by mox2 on :443 (MTASTSHTTPS),
# with a certificate from the test CA.
MTASTS_POLICY_ID = "interop1"
MTASTS_BAD_DOMAIN = "stsbad.mox2.example"
MTASTS_BAD_MX = "mail.elsewhere.example"
# mox1.example has no TLSA record but an enforced MTA-STS policy listing mox1's MX, served by mox1
# on :443 with a certificate from pebble: mox2 delivers to mox1 verified by MTA-STS (PKIX).
# Reporting addresses: DMARC and TLSRPT of each domain (domains.conf) and the per-host TLSRPT
# address at each MX host name (HostTLSRPT in mox.conf, `_smtp._tls.<mx host>` in DNS).
DMARC_LOCALPART = "dmarc-reports"
TLSRPT_LOCALPART = "tls-reports"
HOST_TLSRPT_LOCALPART = "tls-reports"

READY_TIMEOUT = float(os.environ.get("MOX_INTEROP_READY_TIMEOUT", "60"))


class InteropError(Exception):
    """Set-up of the network failed; the message says what was being done."""


def log(msg: str) -> None:
    sys.stderr.write(f"interop: {msg}\n")


def podman(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        p = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise InteropError(f"podman {' '.join(args)}: no result within {timeout}s") from e
    if check and p.returncode != 0:
        raise InteropError(f"podman {' '.join(args)}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    return p


def unavailable_reason() -> str | None:
    """Why the network cannot run on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "interop network needs root (rootful podman)"
    if shutil.which("podman") is None:
        return "podman not installed (run ci/containers-setup.sh as root)"
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        return f"base image {BASE_IMAGE} missing (run ci/containers-setup.sh as root)"
    return None


def _owner_alive(labels: dict[str, str] | None) -> bool:
    """Whether the process that created a container or network (label moxmail.interop.pid) still runs."""
    try:
        pid = int((labels or {}).get(LABEL_PID, ""))
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers() -> None:
    """Remove containers and networks of earlier runs whose process is gone, found by our label only.

    Those of a run still going on (another test session, ``interop/run.sh up``) are left alone.
    """
    import json

    cs = json.loads(podman("ps", "-a", "--filter", f"label={LABEL}=1", "--format", "json").stdout or "[]")
    ids = [c["Id"] for c in cs if not _owner_alive(c.get("Labels"))]
    if ids:
        log(f"removing {len(ids)} leftover container(s)")
        podman("rm", "-f", "-t", "0", *ids, check=False)
    names = podman("network", "ls", "--filter", f"label={LABEL}=1", "--format", "{{.Name}}").stdout.split()
    if names:
        nets = json.loads(podman("network", "inspect", *names).stdout or "[]")
        stale = [n["name"] for n in nets if not _owner_alive(n.get("labels"))]
        if stale:
            log(f"removing {len(stale)} leftover network(s)")
            podman("network", "rm", "-f", *stale, check=False)


def host_on_bridge(network: str, gateways: list[tuple[str, int]], targets: list[str]) -> str:
    """Give the host the gateway address on the network's bridge and check that traffic from the host
    to targets goes over that bridge; returns the bridge's name.

    With podman's CNI backend an internal network's bridge has no address on the host, so the host
    would route the test addresses to its default gateway, out of the machine. Nothing is sent
    before this check passed.
    """
    import json

    info = json.loads(podman("network", "inspect", network).stdout)[0]
    iface = info.get("network_interface") or info.get("NetworkInterface") or ""
    if not iface:
        raise InteropError(f"podman network {network}: no bridge interface in {info}")
    addrs = json.loads(subprocess.run(["ip", "-j", "addr", "show", "dev", iface], capture_output=True, text=True, check=True).stdout)
    have = {a.get("local") for link in addrs for a in link.get("addr_info", [])}
    for gateway, prefixlen in gateways:
        if gateway not in have:
            # nodad: usable at once, no duplicate address detection wait for IPv6.
            extra = ["nodad"] if ":" in gateway else []
            cmd = ["ip", "addr", "add", f"{gateway}/{prefixlen}", "dev", iface, *extra]
            subprocess.run(cmd, capture_output=True, text=True, check=True)
    for ip in targets:
        r = json.loads(subprocess.run(["ip", "-j", "route", "get", ip], capture_output=True, text=True, check=True).stdout)
        dev = r[0].get("dev") if r else None
        if dev != iface:
            raise InteropError(f"refusing to continue: the host routes {ip} via {dev!r}, not the test bridge {iface!r}")
    return iface


def free_subnet(wait: float = 600) -> ipaddress.IPv4Network:
    """A /27 of 198.51.100.0/24 that no podman network on this machine uses; waits for one to be
    freed by another run when all are taken."""
    deadline = time.monotonic() + wait
    while True:
        net = _free_subnet()
        if net is not None:
            return net
        if time.monotonic() > deadline:
            raise InteropError(f"all of {', '.join(map(str, SUBNETS))} are in use by other podman networks for {wait}s")
        time.sleep(2)


def _free_subnet() -> ipaddress.IPv4Network | None:
    used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    names = podman("network", "ls", "--format", "{{.Name}}").stdout.split()
    if names:
        out = podman("network", "inspect", "--format", "{{range .Subnets}}{{.Subnet}} {{end}}", *names).stdout
        for s in out.split():
            with contextlib.suppress(ValueError):
                used.append(ipaddress.ip_network(s, strict=False))
    for net in SUBNETS:
        if not any(u.version == 4 and u.overlaps(net) for u in used):
            return net
    return None


# Images.


def _hash_files(h: Any, paths: list[Path], root: Path) -> None:
    for p in sorted(paths):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        h.update(p.read_bytes() + b"\0")


def _source_files() -> list[Path]:
    files = [REPO / "pyproject.toml", REPO / "README.md"]
    for p in (REPO / "mox").rglob("*"):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".conf", ".txt", ".typed", ".json"):
            files.append(p)
    return files


def _pip(python: Path | str, *args: str, what: str) -> None:
    p = subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise InteropError(f"{what} failed:\n{p.stdout}{p.stderr}")


def _cached_dir(prefix: str, key: str, make: Callable[[Path], None]) -> Path:
    """CACHE/PREFIX-KEY made by make(dir) unless complete already; other PREFIX-* dirs are removed."""
    out = CACHE / f"{prefix}-{key}"
    if (out / ".complete").exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob(f"{prefix}-*"):
        shutil.rmtree(old, ignore_errors=True)
    t0 = time.monotonic()
    make(out)
    (out / ".complete").write_text("")
    log(f"made {out.name} in {time.monotonic() - t0:.1f}s")
    return out


def build_wheels() -> tuple[Path, Path]:
    """Wheel directories for the mox image: (dependencies, moxmail), each cached by a hash of its inputs.

    Dependencies change rarely, the project often: the Dockerfile installs them in separate layers.
    The project is copied to a temporary directory first, so building leaves nothing in the work tree.
    """
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pyver = f"{sys.version_info.major}.{sys.version_info.minor}"
    dkey = hashlib.sha256(("\n".join([pyver, *deps])).encode()).hexdigest()[:16]
    deps_dir = _cached_dir(
        "deps", dkey, lambda d: _pip(sys.executable, "wheel", "-q", "--wheel-dir", str(d), *deps, what="pip wheel (dependencies)")
    )

    # A build environment with a setuptools recent enough for pyproject.toml, made once, so the
    # project's wheel is built without an isolated environment (seconds instead of ~12 s).
    def make_buildenv(d: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(d)], check=True, timeout=300)
        _pip(d / "bin" / "python", "install", "-q", "setuptools>=68", "wheel", what="build environment")

    buildenv = _cached_dir("buildenv", pyver, make_buildenv)

    h = hashlib.sha256()
    _hash_files(h, _source_files(), REPO)

    def make_project(d: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="moxmail-src-") as tmp:
            src = Path(tmp) / "src"
            for p in _source_files():
                dst = src / p.relative_to(REPO)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, dst)
            _pip(
                buildenv / "bin" / "python",
                "wheel", "-q", "--no-deps", "--no-build-isolation", "--wheel-dir", str(d), str(src),
                what="pip wheel (moxmail)",
            )

    return deps_dir, _cached_dir("moxmail-wheel", h.hexdigest()[:16], make_project)


def build_image(name: str, files: dict[str, Path]) -> str:
    """Build an image from files (context path -> source; "Dockerfile" among them) unless an image with
    the same inputs exists; returns its tag ``localhost/NAME:HASH``. Tags of NAME older than an hour are removed
    (layers are shared, so a tag per source change costs little more than the project's wheel)."""
    h = hashlib.sha256()
    for rel in sorted(files):
        src = files[rel]
        h.update(rel.encode() + b"\0")
        if src.is_dir():
            for p in sorted(x for x in src.rglob("*") if x.is_file()):
                h.update(str(p.relative_to(src)).encode() + b"\0" + p.read_bytes() + b"\0")
        else:
            h.update(src.read_bytes() + b"\0")
    tag = f"localhost/{name}:{h.hexdigest()[:16]}"
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"{name}-ctx-") as ctx:
        for rel, src in files.items():
            if src.is_dir():
                shutil.copytree(src, Path(ctx) / rel)
            else:
                shutil.copyfile(src, Path(ctx) / rel)
        podman("build", "-q", "--pull=never", "--label", f"{LABEL}.image={name}", "-t", tag, ctx)
    log(f"built image {tag} in {time.monotonic() - t0:.1f}s")
    # Tags of earlier inputs older than an hour (a concurrent run may still be starting from a newer one).
    old = podman(
        "images", "--filter", f"reference=localhost/{name}", "--filter", "until=1h", "--format", "{{.Repository}}:{{.Tag}}"
    ).stdout.split()
    stale = [t for t in old if t != tag]
    if stale:
        podman("rmi", *stale, check=False)
    return tag


def build_images() -> dict[str, str]:
    """The peer image, the client image and the mox image (docker/Dockerfile), built in parallel."""
    result: dict[str, str] = {}
    errors: list[BaseException] = []

    def peer() -> None:
        result["peer"] = build_image("moxmail-interop-peer", {"Dockerfile": INTEROP / "peer" / "Dockerfile"})

    def client() -> None:
        result["client"] = build_image("moxmail-interop-client", {"Dockerfile": INTEROP / "client" / "Dockerfile"})

    def mox() -> None:
        deps, project = build_wheels()
        files = {"Dockerfile": REPO / "docker" / "Dockerfile", "wheels": deps, "moxmail-wheel": project}
        result["mox"] = build_image("moxmail-interop-mox", files)

    def run(f: Callable[[], None]) -> None:
        try:
            f()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(f,)) for f in (peer, client, mox)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return result


# The podman API service testcontainers talks to.


class PodmanService:
    """``podman system service`` on a socket of our own, for the duration of a run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    @staticmethod
    def stop_leftovers(directory: Path) -> None:
        """Stop services of earlier runs whose owner is gone. Their sockets are directory/podman-OWNERPID.sock;
        a process is only signalled when its command line is the service on exactly that socket."""
        socks = {p.stem.removeprefix("podman-"): p for p in directory.glob("podman-*.sock")}
        socks.update({p.stem.removeprefix("podman-"): p.with_suffix(".sock") for p in directory.glob("podman-*.pid")})
        stale = {f"unix://{sock}".encode(): (owner, sock) for owner, sock in socks.items() if not _owner_alive({LABEL_PID: owner})}
        if not stale:
            return
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                args = (proc / "cmdline").read_bytes().split(b"\0")
                if b"service" in args and b"podman" in args[0]:
                    for url in stale:
                        if url in args:
                            log(f"stopping leftover podman service {proc.name} ({url.decode()})")
                            os.kill(int(proc.name), 15)
        for _owner, sock in stale.values():
            sock.unlink(missing_ok=True)
            sock.with_suffix(".pid").unlink(missing_ok=True)

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.stop_leftovers(self.path.parent)
        self.path.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            ["podman", "system", "service", "--time=0", self.url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.path.with_suffix(".pid").write_text(str(self.proc.pid))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise InteropError(f"podman system service exited with {self.proc.returncode}")
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
                s.connect(str(self.path))
                return
            time.sleep(0.05)
        raise InteropError(f"podman API socket {self.path} not answering within 20s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.path.unlink(missing_ok=True)
        self.path.with_suffix(".pid").unlink(missing_ok=True)


# Keys and certificates.


@dataclass
class TestCA:
    cert_pem: bytes
    key: Any

    @classmethod
    def make(cls) -> TestCA:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "moxmail interop test CA")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(cert.public_bytes(serialization.Encoding.PEM), key)

    def issue(self, names: list[str], ips: list[str]) -> tuple[bytes, bytes, bytes]:
        """A leaf certificate for names and ips: (cert PEM, PKCS#8 key PEM, DER SubjectPublicKeyInfo)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        ca = x509.load_pem_x509_certificate(self.cert_pem)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        san: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        san += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        return cert.public_bytes(serialization.Encoding.PEM), pkcs8, spki


def write(path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    return path


# DNS zones.


@dataclass
class Zone:
    """A zone file being assembled: records as (owner relative to the zone or "@", type, data)."""

    name: str  # without the final dot
    records: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, owner: str, rtype: str, data: str) -> None:
        self.records.append((owner, rtype, data))

    def text(self, ns_ip: str) -> str:
        lines = [
            f"$ORIGIN {self.name}.",
            "$TTL 30",
            # Negative TTL 5 s: tests may add names that were asked for before.
            "@ SOA ns.example. hostmaster.example. 1 3600 600 86400 5",
            "@ NS ns.example.",
        ]
        if self.name == "example":
            lines.append(f"ns A {ns_ip}")
        lines += [f"{o} {t} {d}" for o, t, d in self.records]
        return "\n".join(lines) + "\n"


def txt(value: str) -> str:
    """TXT record data, split into character-strings of at most 255 bytes (RFC 1035 section 3.3.14)."""
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)


# The network.


@dataclass
class Host:
    name: str
    ip: str
    hostname: str
    ip6: str = ""
    container: Any = None  # testcontainers DockerContainer

    def logs(self) -> str:
        if self.container is None:
            return ""
        out, err = self.container.get_logs()
        return (out + err).decode(errors="replace")


@dataclass
class Network:
    state: Path
    subnet: ipaddress.IPv4Network
    subnet6: ipaddress.IPv6Network
    hosts: dict[str, Host]
    ca_file: Path
    images: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    def ip(self, host: str) -> str:
        return self.hosts[host].ip

    def ip6(self, host: str) -> str:
        return self.hosts[host].ip6

    def exec(self, host: str, cmd: list[str], check: bool = True) -> tuple[int, str]:
        """Run cmd in host's container; returns (exit code, output)."""
        code, out = self.hosts[host].container.exec(cmd)
        text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
        if check and code != 0:
            raise AssertionError(f"{host}: {cmd} exited {code}:\n{text}")
        return code, text

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only the test CA, verifying host names."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def postfix_log(self) -> str:
        p = self.state / "postfix" / "maillog"
        return p.read_text(errors="replace") if p.exists() else ""

    def imap(self, account: str, host: str = "mox2") -> imaplib.IMAP4:
        """A logged-in IMAP session from the host to host:143 after STARTTLS, verified with the test CA
        (mox2), or for mox1 with pebble's root of this run and the name mail.mox1.example."""
        if host == "mox1":
            addr, password = MOX1_ACCOUNTS[account]
            ctx = ssl.create_default_context(cadata=(self.state / "acme" / "root.pem").read_text())
        else:
            addr, password = MOX2_ACCOUNTS[account]
            ctx = self.ssl_context()
        im = imaplib.IMAP4(self.ip(host), 143, timeout=20)
        if host == "mox1":
            im.host = MOX1_HOST  # the name the certificate is checked against
        im.starttls(ctx)
        im.login(addr, password)
        return im

    def fetch_message(self, host: str, account: str, criteria: list[str], mailbox: str = "INBOX", timeout: float = 60) -> bytes:
        """The newest message matching the IMAP SEARCH criteria in account's mailbox on host (mox1,
        mox2), read over IMAP; waits until there is one."""
        deadline = time.monotonic() + timeout
        im = self.imap(account, host)
        try:
            while True:
                typ, data = im.select(mailbox)
                if typ == "OK":
                    typ, data = im.search(None, *criteria)
                    nums = data[0].split() if typ == "OK" and data and isinstance(data[0], bytes) else []
                    if nums:
                        typ, data = im.fetch(nums[-1], "(BODY.PEEK[])")
                        part = data[0] if typ == "OK" and data else None
                        if not isinstance(part, tuple):
                            raise AssertionError(f"fetch from {host} {account} {mailbox}: {typ} {data}")
                        return part[1]
                if time.monotonic() > deadline:
                    raise AssertionError(f"no message {criteria} in {mailbox} of {account} on {host} within {timeout}s\n{self.all_logs()}")
                time.sleep(0.2)
        finally:
            im.logout()

    def wait_mox1_certificates(self) -> None:
        """Wait until mox1 obtained its certificates from pebble: its host name and mta-sts.mox1.example."""
        for name in (MOX1_HOST, f"mta-sts.{MOX1_DOMAIN}"):
            wait_for(
                f"mox1: certificate obtained for {name}",
                lambda n=name: any('m="certificate obtained"' in x and f"host={n}" in x for x in self.hosts["mox1"].logs().splitlines()),  # type: ignore[misc]
                120,
                self.all_logs,
            )

    def submission(self, account: str, host: str = "mox2") -> smtplib.SMTP:
        """An authenticated SMTP submission session from the host to host:587 after verified STARTTLS."""
        addr, password = MOX2_ACCOUNTS[account]
        s = smtplib.SMTP(self.ip(host), 587, local_hostname="client.example", timeout=20)
        s.starttls(context=self.ssl_context())
        s.login(addr, password)
        return s

    def client_submit(self, instance: str, account: str, to: list[str], subject: str, body: str = "") -> str:
        """Submit a message from the client container: submissions (port 465, implicit TLS) to the
        instance's host name, resolved by the client's resolver, its certificate verified with only
        the CA that issued it (pebble's root of this run for mox1, the test CA for mox2); AUTH as
        account. Returns the client's output; raises AssertionError when it failed."""
        accounts, hostname, cafile = {
            "mox1": (MOX1_ACCOUNTS, MOX1_HOST, "/state/acme-root.pem"),
            "mox2": (MOX2_ACCOUNTS, MOX2_HOST, "/state/ca.pem"),
        }[instance]
        addr, password = accounts[account]
        cmd = ["python3", "/interop/submit.py", "--host", hostname, "--cafile", cafile, "--user", addr, "--password", password]
        cmd += ["--sender", addr, "--subject", subject, *(x for t in to for x in ("--to", t))]
        if body:
            cmd += ["--body", body]
        code, out = self.exec("client", cmd, check=False)
        if code != 0 or not out.rstrip().endswith("sent"):
            raise AssertionError(f"submission from the client to {hostname} failed (exit {code}):\n{out}\n{self.hosts[instance].logs()}")
        return out

    def db_rows(self, instance: str, db: str, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of query on an SQLite database in the data dir of instance (mox1, mox2), opened
        read-only from the host (the data dir is mounted from state/INSTANCE/data); [] when the
        database does not exist yet."""
        import sqlite3

        path = self.state / instance / "data" / db
        if not path.exists():
            return []
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(query, args).fetchall()
        finally:
            con.close()

    def tls_results(self, instance: str) -> list[dict[str, Any]]:
        """The TLS results instance recorded for its outgoing deliveries (tlsrpt.db, RFC 8460 section 4.4):
        dicts with policy_domain, recipient_domain, day (yyyymmdd), is_host, send_report and results
        (the report's "policies" entries: policy, summary, failure-details)."""
        import json

        rows = self.db_rows(
            instance, "tlsrpt.db", "SELECT policy_domain, recipient_domain, day_utc, is_host, send_report, results FROM tls_result ORDER BY id"
        )
        keys = ("policy_domain", "recipient_domain", "day", "is_host", "send_report")
        return [{**dict(zip(keys, r[:5], strict=True)), "results": json.loads(r[5])} for r in rows]

    def wait_postfix_log(self, text: str, timeout: float = 60) -> str:
        """Wait until Postfix's maillog contains text; returns the log."""
        wait_for(f"postfix maillog line containing {text!r}", lambda: text in self.postfix_log(), timeout, self.all_logs)
        return self.postfix_log()

    def env_text(self) -> str:
        """Shell variable assignments describing the running network, for other suites and people."""
        import shlex

        v: dict[str, str] = {
            "MOX_INTEROP_STATE": str(self.state),
            "MOX_INTEROP_SUBNET": str(self.subnet),
            "MOX_INTEROP_SUBNET6": str(self.subnet6),
            "MOX_INTEROP_CA": str(self.ca_file),
            "MOX_INTEROP_RESOLVER": f"{self.ip('dns')}:53",
            "MOX_INTEROP_MOX1_CONFIG": str(self.state / "mox1" / "config" / "mox.conf"),
            "MOX_INTEROP_MOX2_CONFIG": str(self.state / "mox2" / "config" / "mox.conf"),
            "MOX_INTEROP_POSTFIX_MAILLOG": str(self.state / "postfix" / "maillog"),
            "MOX_INTEROP_ACME_DIRECTORY": f"https://{ACME_HOST}:14000/dir",
            "MOX_INTEROP_ACME_ROOT": str(self.state / "acme" / "root.pem"),
        }
        for h in self.hosts.values():
            key = h.name.upper()
            v[f"MOX_INTEROP_{key}_IP"] = h.ip
            v[f"MOX_INTEROP_{key}_IP6"] = h.ip6
            v[f"MOX_INTEROP_{key}_HOSTNAME"] = h.hostname
            if h.container is not None:
                v[f"MOX_INTEROP_{key}_CONTAINER"] = h.container.get_wrapped_container().name
        for inst, accounts in (("MOX1", MOX1_ACCOUNTS), ("MOX2", MOX2_ACCOUNTS)):
            for name, (addr, pw) in accounts.items():
                v[f"MOX_INTEROP_{inst}_{name.upper()}_ADDRESS"] = addr
                v[f"MOX_INTEROP_{inst}_{name.upper()}_PASSWORD"] = pw
        return "".join(f"{k}={shlex.quote(x)}\n" for k, x in v.items())

    def all_logs(self) -> str:
        parts = []
        for h in self.hosts.values():
            parts.append(f"===== {h.name} ({h.ip}) container log =====\n{h.logs()}")
        parts.append(f"===== postfix maillog =====\n{self.postfix_log()}")
        return "\n".join(parts)


def wait_for(what: str, check: Callable[[], bool], timeout: float, logs: Callable[[], str] = lambda: "") -> None:
    """Poll check until it returns True; raise InteropError naming what was awaited after timeout."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as e:
            last = e
        time.sleep(0.1)
    raise InteropError(f"timeout after {timeout}s waiting for {what} (last error: {last!r})\n{logs()}")


def smtp_banner(ip: str, port: int = 25) -> bool:
    with socket.create_connection((ip, port), timeout=2) as s:
        return s.recv(512).startswith(b"220")


def dns_query(server: str, name: str, rtype: str, timeout: float = 3) -> Any:
    """A query with the DO bit to server:53 (unbound sets AD only when asked, RFC 6840 section 5.7)."""
    import dns.flags
    import dns.message
    import dns.query

    q = dns.message.make_query(name, rtype, want_dnssec=True)
    q.flags |= dns.flags.AD
    return dns.query.udp(q, server, timeout=timeout)


def dns_authentic(server: str, name: str, rtype: str) -> bool:
    import dns.flags
    import dns.rcode

    r = dns_query(server, name, rtype)
    return r.rcode() == dns.rcode.NOERROR and bool(r.flags & dns.flags.AD) and len(r.answer) > 0


def write_mox2_config(state: Path, net_ips: dict[str, str], net_ips6: dict[str, str], ca: TestCA) -> tuple[Path, dict[str, str], bytes]:
    """mox2: TLS certificate from the test CA, published as TLSA; MTA-STS policies for mox2.example
    and MTASTS_BAD_DOMAIN (whose MX pattern matches no MX host). It trusts pebble's root of this
    run (config/pebble-root.pem, written once pebble answers, before mox2 starts) for mox1's
    certificates: PKIX verification as mox1.example's enforced MTA-STS policy requires."""
    conf, dkim_txt, spki = write_mox_config(
        state, "mox2", MOX2_DOMAIN, MOX2_HOST, [net_ips["mox2"], net_ips6["mox2"]], MOX2_ACCOUNTS, ca=ca,
        mtasts_mx={MOX2_DOMAIN: [MOX2_HOST], MTASTS_BAD_DOMAIN: [MTASTS_BAD_MX]},
        later_ca_files=["pebble-root.pem"],
    )
    assert spki is not None
    return conf, dkim_txt, spki


def write_mox1_config(state: Path, net_ips: dict[str, str], net_ips6: dict[str, str], ca: TestCA) -> tuple[Path, dict[str, str]]:
    """mox1: certificates from pebble (ACME, tls-alpn-01 on port 443) for its host name and
    mta-sts.mox1.example; an enforced MTA-STS policy for mox1.example (no TLSA record for its MX).
    pebble's HTTPS and mox2's certificates are trusted by the test CA, which mox1's config lists."""
    conf, dkim_txt, _ = write_mox_config(
        state, "mox1", MOX1_DOMAIN, MOX1_HOST, [net_ips["mox1"], net_ips6["mox1"]], MOX1_ACCOUNTS,
        acme_directory=f"https://{ACME_HOST}:14000/dir", acme_ca=ca.cert_pem, mtasts_mx={MOX1_DOMAIN: [MOX1_HOST]},
    )
    return conf, dkim_txt


REFUSE_TRANSPORT_MESSAGE = "refused by the interop test transport"
"""Text of the instances' "refuse" transport (a Fail transport), shown in its DSNs."""


def write_mox_config(
    state: Path,
    name: str,
    domain: str,
    hostname: str,
    ips: list[str],
    accounts_pw: dict[str, tuple[str, str]],
    *,
    ca: TestCA | None = None,
    acme_directory: str = "",
    acme_ca: bytes = b"",
    mtasts_mx: dict[str, list[str]] | None = None,
    later_ca_files: list[str] | None = None,
) -> tuple[Path, dict[str, str], bytes | None]:
    """Config and data dirs for a mox instance under state/NAME, with the project's config code.
    TLS from ca (a certificate for hostname) or from ACME (acme_directory, trusting acme_ca).
    mtasts_mx: domain -> MX patterns of an enforced MTA-STS policy served by the instance (MTASTSHTTPS
    on :443, the certificate from ca also naming mta-sts.DOMAIN); a domain other than domain is added
    without accounts. later_ca_files: CA files in the config dir (TLS.CA CertFiles) written by the
    caller before the instance starts. TLS reports are sent also when all went well
    (OutgoingTLSReportsForAllSuccess), and reports about the host name go to HostTLSRPT.

    Returns (path of mox.conf, DKIM TXT records by selector, DER SPKI of the TLS key for TLSA or None).
    """
    from cryptography.hazmat.primitives import serialization

    from mox.config import keys, model, sconf
    from mox.config.edit import make_account_config
    from mox.config.load import load_config, write_file_atomic
    from mox.config.sconf import parse_duration
    from mox.dkim.record import txt_record
    from mox.store.deliver import open_config_account
    from mox.store.password import make_secrets

    root = state / name
    cdir, ddir = root / "config", root / "data"
    cdir.mkdir(parents=True)
    ddir.mkdir()
    spki: bytes | None = None
    mtasts_mx = mtasts_mx or {}
    if ca is not None:
        cert, key, spki = ca.issue([hostname, *(f"mta-sts.{d}" for d in mtasts_mx)], ips)
        write_file_atomic(cdir / "mail.crt", cert, 0o644)
        write_file_atomic(cdir / "mail.key", key, 0o600)
        tls = model.ListenerTLS(KeyCerts=[model.KeyCert(CertFile="mail.crt", KeyFile="mail.key")])
    else:
        tls = model.ListenerTLS(ACME="pebble")
    ca_files = list(later_ca_files or [])
    if acme_ca:
        write_file_atomic(cdir / "acme-ca.pem", acme_ca, 0o644)
        ca_files.insert(0, "acme-ca.pem")
    write_file_atomic(cdir / "adminpasswd", keys.hash_admin_password("interop-admin-pw") + b"\n", 0o600)

    dkim_txt: dict[str, str] = {}
    selectors: dict[str, model.Selector] = {}
    for sel, make in (("ed1", keys.make_dkim_ed25519_key), ("rsa1", keys.make_dkim_rsa_key)):
        pem = make()
        fname = f"dkim-{sel}.pkcs8.pem"
        write_file_atomic(cdir / fname, pem, 0o600)
        selectors[sel] = model.Selector(Expiration="72h", PrivateKeyFile=fname)
        dkim_txt[sel] = txt_record(serialization.load_pem_private_key(pem, None))  # type: ignore[arg-type]

    listener = model.Listener(
        IPs=list(ips),
        TLS=tls,
        SMTP=model.SMTPListener(Enabled=True),
        Submission=model.SubmissionListener(Enabled=True),
        Submissions=model.SubmissionsListener(Enabled=True),
        IMAP=model.IMAPListener(Enabled=True),
        IMAPS=model.IMAPSListener(Enabled=True),
    )
    static = model.Static(
        DataDir="../data",
        LogLevel="debug",
        # The image's user; mox serve drops to it once privilege dropping is built (mox/privileges).
        User="mox",
        Hostname=hostname,
        AdminPasswordFile="adminpasswd",
        Listeners={"public": listener},
        Postmaster=model.Postmaster(Account="mjl", Mailbox="Postmaster"),
        HostTLSRPT=model.HostTLSRPT(Account="mjl", Mailbox="TLSRPT", Localpart=HOST_TLSRPT_LOCALPART),
        OutgoingTLSReportsForAllSuccess=True,
        # For `mox queue transport` (test_interop_ctl.py): a transport that fails every attempt.
        Transports={
            "refuse": model.Transport(Fail=model.TransportFail(SMTPCode=554, SMTPMessage=REFUSE_TRANSPORT_MESSAGE))
        },
    )
    if ca_files:
        static.TLS = model.GlobalTLS(CA=model.CAConfig(CertFiles=ca_files))
    if acme_directory:
        # tls-alpn-01 on port 443, answered by the MTA-STS HTTPS listener there.
        static.ACME = {"pebble": model.ACME(DirectoryURL=acme_directory, ContactEmail=f"postmaster@{domain}")}
        listener.MTASTSHTTPS = model.MTASTSListener(Enabled=True)
    if mtasts_mx:
        listener.MTASTSHTTPS = model.MTASTSListener(Enabled=True)
    accounts = {}
    for acc_name, (addr, _pw) in accounts_pw.items():
        acc = make_account_config(addr, domain)
        # No 15 s wait for first-time senders: every sender is new in a fresh network.
        acc.NoFirstTimeSenderDelay = True
        accounts[acc_name] = acc
    dynamic = model.Dynamic(
        Domains={
            domain: model.Domain(
                LocalpartCatchallSeparator="+",
                DKIM=model.DKIM(Selectors=selectors, Sign=list(selectors)),
                DMARC=model.DMARC(Localpart=DMARC_LOCALPART, Account="mjl", Mailbox="DMARC"),
                TLSRPT=model.TLSRPT(Localpart=TLSRPT_LOCALPART, Account="mjl", Mailbox="TLSRPT"),
            )
        },
        Accounts=accounts,
    )
    for d, mx in mtasts_mx.items():
        # max_age of a day (RFC 8461 section 3.2); nothing outlives the run anyway.
        policy = model.MTASTS(PolicyID=MTASTS_POLICY_ID, Mode="enforce", MaxAge=parse_duration("24h"), MX=list(mx))
        dynamic.Domains.setdefault(d, model.Domain()).MTASTS = policy
    conf = cdir / "mox.conf"
    write_file_atomic(conf, sconf.write(static, header=model.STATIC_HEADER).encode(), 0o644)
    write_file_atomic(cdir / "domains.conf", sconf.write(dynamic, header=model.DYNAMIC_HEADER).encode(), 0o644)

    # Passwords go into the account databases before the server starts (the container has no stdin
    # for `mox setaccountpassword`); the data dir is mounted into the container. User "mox" exists
    # only in the image: the host loads a copy of mox.conf naming root, in the same directory.
    static.User = "0"
    if static.TLS is not None and static.TLS.CA is not None:
        # CA files written later (pebble's root) are not there yet; the host needs none of them.
        static.TLS.CA.CertFiles = [f for f in static.TLS.CA.CertFiles if (cdir / f).exists()]
    write_file_atomic(cdir / "mox-host.conf", sconf.write(static, header=model.STATIC_HEADER).encode(), 0o644)
    cfg = load_config(cdir / "mox-host.conf")

    async def set_passwords() -> None:
        for acc_name, (_addr, pw) in accounts_pw.items():
            acc = await open_config_account(cfg, acc_name)
            try:
                # bcrypt cost 4 (the minimum): the server's default makes set-up seconds slower.
                await acc.set_password_secrets(make_secrets(pw, bcrypt_cost=4).to_json())
            finally:
                await acc.close()

    asyncio.run(set_passwords())
    (cdir / "mox-host.conf").unlink()
    return conf, dkim_txt, spki


def make_zones(
    ips: dict[str, str],
    ips6: dict[str, str],
    subnet6: ipaddress.IPv6Network,
    dkim_txt: dict[str, str],
    mox2_spki: bytes,
    mox1_dkim_txt: dict[str, str],
) -> dict[str, Zone]:
    """The zones, with records derived from the hosts' addresses, mox2's config and keys."""
    example = Zone("example")
    mox2 = Zone(MOX2_DOMAIN)
    # mox2.example: what `mox config dnsrecords` would list for this config.
    mox2.add("@", "MX", f"10 {MOX2_HOST}.")
    mox2.add("mail", "A", ips["mox2"])
    mox2.add("mail", "AAAA", ips6["mox2"])
    mox2.add("@", "TXT", txt(f"v=spf1 ip4:{ips['mox2']} ip6:{ips6['mox2']} mx ~all"))
    mox2.add("mail", "TXT", txt("v=spf1 a -all"))
    for sel, rec in dkim_txt.items():
        mox2.add(f"{sel}._domainkey", "TXT", txt(rec))
    add_report_records(mox2, MOX2_DOMAIN, MOX2_HOST)
    # DANE-EE, SPKI, SHA-256 (RFC 7671 section 5.1; RFC 7672 section 3.1.1).
    mox2.add("_25._tcp.mail", "TLSA", "3 1 1 " + hashlib.sha256(mox2_spki).hexdigest())
    # A second MX name for mox2's address whose TLSA record matches no key: DANE must fail for
    # the domain bad.mox2.example that uses it.
    mox2.add("badmx", "A", ips["mox2"])
    mox2.add("_25._tcp.badmx", "TLSA", "3 1 1 " + hashlib.sha256(b"not mox2's key" + mox2_spki).hexdigest())
    mox2.add("bad", "MX", f"10 badmx.{MOX2_DOMAIN}.")
    # MTA-STS (RFC 8461 section 3.1): the policy's version in TXT, the policy host's addresses.
    bad = MTASTS_BAD_DOMAIN.removesuffix(f".{MOX2_DOMAIN}")
    for prefix in ("", f".{bad}"):
        mox2.add(f"_mta-sts{prefix}", "TXT", txt(f"v=STSv1; id={MTASTS_POLICY_ID}"))
        mox2.add(f"mta-sts{prefix}", "A", ips["mox2"])
        mox2.add(f"mta-sts{prefix}", "AAAA", ips6["mox2"])
    # The domain whose policy lists another MX: its real MX is mox2's.
    mox2.add(bad, "MX", f"10 {MOX2_HOST}.")

    # mox1.example: certificates from ACME, so no TLSA record.
    mox1 = Zone(MOX1_DOMAIN)
    mox1.add("@", "MX", f"10 {MOX1_HOST}.")
    mox1.add("mail", "A", ips["mox1"])
    mox1.add("mail", "AAAA", ips6["mox1"])
    mox1.add("@", "TXT", txt(f"v=spf1 ip4:{ips['mox1']} ip6:{ips6['mox1']} mx ~all"))
    mox1.add("mail", "TXT", txt("v=spf1 a -all"))
    for sel, rec in mox1_dkim_txt.items():
        mox1.add(f"{sel}._domainkey", "TXT", txt(rec))
    add_report_records(mox1, MOX1_DOMAIN, MOX1_HOST)
    # MTA-STS (RFC 8461 section 3.1) for mox1.example, the policy served by mox1 (ACME certificate).
    mox1.add("_mta-sts", "TXT", txt(f"v=STSv1; id={MTASTS_POLICY_ID}"))
    mox1.add("mta-sts", "A", ips["mox1"])
    mox1.add("mta-sts", "AAAA", ips6["mox1"])

    postfix = Zone(POSTFIX_DOMAIN)
    postfix.add("@", "MX", f"10 {POSTFIX_HOST}.")
    postfix.add("mail", "A", ips["postfix"])
    postfix.add("mail", "AAAA", ips6["postfix"])
    postfix.add("@", "TXT", txt(f"v=spf1 ip4:{ips['postfix']} ip6:{ips6['postfix']} -all"))
    postfix.add("mail", "TXT", txt("v=spf1 a -all"))
    postfix.add("_dmarc", "TXT", txt("v=DMARC1; p=none"))

    rev = Zone(REVERSE_ZONE.rstrip("."))
    rev6 = Zone(reverse_zone6(subnet6).rstrip("."))
    hostnames = (("dns", "ns.example"), ("acme", ACME_HOST), ("mox1", MOX1_HOST), ("mox2", MOX2_HOST), ("postfix", POSTFIX_HOST), ("client", CLIENT_HOST))
    for host, hostname in hostnames:
        rev.add(ips[host].split(".")[-1], "PTR", hostname + ".")
        rev6.add(reverse_owner6(ips6[host]), "PTR", hostname + ".")
    # The DS records of the signed children are appended by interop/dns.sh once knot made their keys.
    for child in (mox1, mox2, postfix):
        example.add(child.name.removesuffix(".example"), "NS", "ns.example.")
    example.add("acme", "A", ips["acme"])
    example.add("acme", "AAAA", ips6["acme"])
    example.add(CLIENT_HOST.removesuffix(".example"), "A", ips["client"])
    example.add(CLIENT_HOST.removesuffix(".example"), "AAAA", ips6["client"])
    return {"example": example, MOX1_DOMAIN: mox1, MOX2_DOMAIN: mox2, POSTFIX_DOMAIN: postfix, rev.name: rev, rev6.name: rev6}


def add_report_records(zone: Zone, domain: str, mx_host: str) -> None:
    """DMARC (RFC 7489 section 6.3) and TLSRPT (RFC 8460 section 3) records of a mox instance's domain,
    with its reporting addresses (domains.conf), and the TLSRPT record of its MX host pointing at
    the HostTLSRPT address (mox.conf): DANE results are reported to the MX host's record.
    ri=3600: aggregate reports every hour, not daily."""
    zone.add("_dmarc", "TXT", txt(f"v=DMARC1; p=reject; ri=3600; rua=mailto:{DMARC_LOCALPART}@{domain}"))
    zone.add("_smtp._tls", "TXT", txt(f"v=TLSRPTv1; rua=mailto:{TLSRPT_LOCALPART}@{domain}"))
    host = mx_host.removesuffix(f".{domain}")
    zone.add(f"_smtp._tls.{host}", "TXT", txt(f"v=TLSRPTv1; rua=mailto:{HOST_TLSRPT_LOCALPART}@{mx_host}"))


SIGNED = ["example", MOX1_DOMAIN, MOX2_DOMAIN, POSTFIX_DOMAIN]


def write_dns_state(
    d: Path, zones: dict[str, Zone], dns_ips: list[str], subnets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> None:
    dns_ip = dns_ips[0]
    reverse = [f"{name}." for name in zones if name.endswith(".arpa")]
    for z in zones.values():
        write(d / "knot" / "zones" / f"{z.name}.zone", z.text(dns_ip))
    write(d / "signed-children", "\n".join(z for z in SIGNED if z != "example") + "\n")
    zone_conf = "".join(
        f"  - domain: {name}.\n    template: {'signed' if name in SIGNED else 'unsigned'}\n" for name in zones
    )
    write(
        d / "knot.conf",
        f"""server:
    rundir: /state/knot/run
    listen: 127.0.0.1@53
log:
  - target: stdout
    any: info
database:
    storage: /state/knot/db
policy:
  - id: pregen
    manual: on
    single-type-signing: on
    algorithm: ecdsap256sha256
    nsec3: off
template:
  - id: signed
    storage: /state/knot/zones
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: difference-no-serial
    journal-content: all
    dnssec-signing: on
    dnssec-policy: pregen
  - id: unsigned
    storage: /state/knot/zones
    file: "%s.zone"
    zonefile-sync: -1
zone:
{zone_conf}""",
    )
    stubs = "".join(f'stub-zone:\n    name: "{z}"\n    stub-addr: 127.0.0.1@53\n' for z in ("example.", *reverse))
    interfaces = "".join(f"    interface: {ip}\n" for ip in dns_ips)
    access = "".join(f"    access-control: {net} allow\n" for net in subnets)
    # unbound refuses the documentation ranges' reverse zones unless they are transparent.
    local = "".join(f'    local-zone: "{z}" transparent\n' for z in reverse)
    write(
        d / "unbound.conf",
        f"""server:
    use-syslog: no
    logfile: ""
    verbosity: 1
    log-servfail: yes
    val-log-level: 2
    username: ""
    chroot: ""
    pidfile: ""
    directory: "/state/unbound"
{interfaces}{access}    do-not-query-localhost: no
    module-config: "validator iterator"
    include: "/state/trust-anchor.conf"
    local-zone: "." static
    local-zone: "example." transparent
{local}    cache-max-ttl: 30
    cache-max-negative-ttl: 5
{stubs}""",
    )
    (d / "unbound").mkdir(exist_ok=True)


def write_postfix_state(d: Path, ca: TestCA, ips: list[str]) -> None:
    cert, key, _spki = ca.issue([POSTFIX_HOST], ips)
    write(d / "postfix.pem", cert)
    write(d / "postfix.key", key, 0o600)
    write(d / "ca.pem", ca.cert_pem)
    write(
        d / "main.cf",
        f"""compatibility_level = 3.6
maillog_file = /state/maillog
maillog_file_prefixes = /state
myhostname = {POSTFIX_HOST}
mydomain = {POSTFIX_DOMAIN}
myorigin = $mydomain
mydestination = $mydomain, $myhostname, localhost
inet_interfaces = all
inet_protocols = all
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
local_recipient_maps = proxy:unix:passwd.byname
home_mailbox = Maildir/
smtpd_tls_cert_file = /state/postfix.pem
smtpd_tls_key_file = /state/postfix.key
smtpd_tls_security_level = may
smtp_dns_support_level = dnssec
smtp_tls_security_level = dane
smtp_tls_loglevel = 1
smtpd_tls_loglevel = 1
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
""",
    )


def write_acme_state(d: Path, ca: TestCA, ips: list[str]) -> None:
    """pebble's config: ACME on :14000, management on :15000, HTTPS with a certificate from the test CA
    (Debian's pebble ships none); it validates http-01 on port 80 and tls-alpn-01 on 443."""
    import json

    cert, key, _spki = ca.issue([ACME_HOST], ips)
    write(d / "pebble.pem", cert)
    write(d / "pebble.key", key, 0o600)
    conf = {
        "pebble": {
            "listenAddress": ":14000",
            "managementListenAddress": ":15000",
            "certificate": "/state/pebble.pem",
            "privateKey": "/state/pebble.key",
            "httpPort": 80,
            "tlsPort": 443,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    write(d / "pebble.json", json.dumps(conf, indent=2))


def https_get(url: str, ip: str, ctx: ssl.SSLContext, timeout: float = 5) -> bytes:
    """GET url (its host name verified against ctx) from ip, without a DNS lookup on the host."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(url)
    assert u.hostname and u.port
    conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=timeout)
    # Connect to ip, but verify and send SNI for the URL's host name.
    conn.sock = ctx.wrap_socket(socket.create_connection((ip, u.port), timeout=timeout), server_hostname=u.hostname)
    try:
        conn.request("GET", u.path or "/")
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise InteropError(f"GET {url}: HTTP {r.status}: {body[:200]!r}")
        return body
    finally:
        conn.close()


@contextlib.contextmanager
def start_network(state: Path) -> Iterator[Network]:
    """Build images, bring up the network and its hosts, yield it; everything is removed afterwards,
    also when set-up or a test fails. Container logs are written to state/logs/ at the end."""
    from docker.types import EndpointConfig, IPAMConfig, IPAMPool
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network as TCNetwork

    reason = unavailable_reason()
    if reason:
        raise InteropError(reason)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    remove_leftovers()
    images = build_images()
    timings["images"] = time.monotonic() - t0

    t1 = time.monotonic()
    svc = PodmanService(Path("/run/moxmail-interop") / f"podman-{os.getpid()}.sock")
    old_env = os.environ.get("DOCKER_HOST")
    with contextlib.ExitStack() as stack:
        svc.start()
        stack.callback(svc.stop)
        timings["podman-service"] = time.monotonic() - t1
        os.environ["DOCKER_HOST"] = svc.url
        stack.callback(lambda: os.environ.pop("DOCKER_HOST", None) if old_env is None else os.environ.update(DOCKER_HOST=old_env))

        # Each run gets its own /27; a concurrent run may take the one found free first: try again.
        for attempt in range(len(SUBNETS)):
            subnet = free_subnet()
            subnet6 = SUBNETS6[SUBNETS.index(subnet)]
            base, base6 = int(subnet.network_address), int(subnet6.network_address)
            ips = {h: str(ipaddress.IPv4Address(base + off)) for h, off in OFFSETS.items()}
            ips6 = {h: str(ipaddress.IPv6Address(base6 + off)) for h, off in OFFSETS.items()}
            tcnet = TCNetwork(
                docker_network_kw={
                    "internal": True,
                    "labels": {LABEL: "1", LABEL_PID: str(os.getpid())},
                    "enable_ipv6": True,
                    "ipam": IPAMConfig(
                        pool_configs=[
                            IPAMPool(subnet=str(subnet), gateway=ips["gateway"]),
                            IPAMPool(subnet=str(subnet6), gateway=ips6["gateway"]),
                        ]
                    ),
                }
            )
            tcnet.name = f"moxmail-interop-{os.getpid()}"
            try:
                tcnet.create()
                break
            except Exception as e:
                if attempt == len(SUBNETS) - 1:
                    raise InteropError(f"creating network on {subnet}: {e}") from e
                time.sleep(0.5)
        stack.callback(tcnet.remove)
        timings["net-create"] = time.monotonic() - t1

        ca = TestCA.make()
        ca_file = write(state / "ca.pem", ca.cert_pem)
        conf, dkim_txt, spki = write_mox2_config(state, ips, ips6, ca)
        conf1, dkim_txt1 = write_mox1_config(state, ips, ips6, ca)
        zones = make_zones(ips, ips6, subnet6, dkim_txt, spki, dkim_txt1)
        write_dns_state(state / "dns", zones, [ips["dns"], ips6["dns"]], [subnet, subnet6])
        write_postfix_state(state / "postfix", ca, [ips["postfix"], ips6["postfix"]])
        write_acme_state(state / "acme", ca, [ips["acme"], ips6["acme"]])
        write(state / "client" / "ca.pem", ca.cert_pem)
        timings["configs"] = time.monotonic() - t1

        hosts = {
            "dns": Host("dns", ips["dns"], "ns.example", ips6["dns"]),
            "postfix": Host("postfix", ips["postfix"], POSTFIX_HOST, ips6["postfix"]),
            "acme": Host("acme", ips["acme"], ACME_HOST, ips6["acme"]),
            "mox1": Host("mox1", ips["mox1"], MOX1_HOST, ips6["mox1"]),
            "mox2": Host("mox2", ips["mox2"], MOX2_HOST, ips6["mox2"]),
            "localserve": Host("localserve", ips["localserve"], "localserve.example", ips6["localserve"]),
            "client": Host("client", ips["client"], CLIENT_HOST, ips6["client"]),
        }
        net = Network(state, subnet, subnet6, hosts, ca_file, images, timings)

        def save_logs() -> None:
            ldir = state / "logs"
            ldir.mkdir(exist_ok=True)
            for h in hosts.values():
                with contextlib.suppress(Exception):
                    (ldir / f"{h.name}.log").write_text(h.logs())

        def container(h: Host, image: str, **kw: Any) -> Any:
            c = DockerContainer(image).with_name(f"moxmail-interop-{os.getpid()}-{h.name}")
            c = c.with_kwargs(
                labels={LABEL: "1", LABEL_PID: str(os.getpid())},
                hostname=h.hostname,
                dns=[ips["dns"]],
                dns_opt=["trust-ad"],
                network=tcnet.name,
                networking_config={
                    tcnet.name: EndpointConfig("1.44", aliases=[h.hostname], ipv4_address=h.ip, ipv6_address=h.ip6)
                },
                **kw,
            )
            h.container = c
            stack.callback(c.stop)
            return c

        # Logs are saved before the containers are removed (callbacks run last-registered first).
        dns_c = container(hosts["dns"], images["peer"])
        dns_c.with_volume_mapping(str(state / "dns"), "/state", "rw").with_volume_mapping(str(INTEROP), "/interop", "ro")
        dns_c.with_command(["sh", "/interop/dns.sh"])
        pf_c = container(hosts["postfix"], images["peer"])
        pf_c.with_volume_mapping(str(state / "postfix"), "/state", "rw").with_volume_mapping(str(INTEROP), "/interop", "ro")
        pf_c.with_command(["sh", "/interop/postfix.sh"])
        # The client: a user's machine submitting mail (interop/submit.py); its state dir has the CA
        # files to trust (pebble's root of this run is added once pebble answers).
        client_c = container(hosts["client"], images["client"])
        client_c.with_volume_mapping(str(state / "client"), "/state", "rw").with_volume_mapping(str(INTEROP), "/interop", "ro")
        mox_c = container(hosts["mox2"], images["mox"])
        mox_c.with_volume_mapping(str(conf.parent), "/mox/config", "rw").with_volume_mapping(str(state / "mox2" / "data"), "/mox/data", "rw")
        mox1_c = container(hosts["mox1"], images["mox"])
        mox1_c.with_volume_mapping(str(conf1.parent), "/mox/config", "rw")
        mox1_c.with_volume_mapping(str(state / "mox1" / "data"), "/mox/data", "rw")
        acme_c = container(hosts["acme"], images["peer"])
        acme_c.with_volume_mapping(str(state / "acme"), "/state", "rw")
        # No random validation delays and no rejected nonces: both make tests flaky (pebble's README).
        acme_c.with_env("PEBBLE_VA_NOSLEEP", "1").with_env("PEBBLE_WFE_NONCEREJECT", "0")
        acme_c.with_command(["pebble", "-config", "/state/pebble.json", "-dnsserver", f"{ips['dns']}:53"])
        # The same image running `mox localserve` (config made at first start, ports + 1000).
        ls_c = container(hosts["localserve"], images["mox"])
        ls_c.with_command(["mox", "localserve", "-dir", "/mox/data/localserve", "-ip", ips["localserve"]])
        stack.callback(save_logs)

        timings["network"] = time.monotonic() - t1
        for name, c in (("dns", dns_c), ("postfix", pf_c), ("acme", acme_c), ("client", client_c), ("localserve", ls_c)):
            c.start()
            timings[f"start-{name}"] = time.monotonic() - t1
        timings["started"] = time.monotonic() - t1
        # The CNI bridge exists once the first container is attached.
        gateways = [(ips["gateway"], subnet.prefixlen), (ips6["gateway"], subnet6.prefixlen)]
        host_on_bridge(tcnet.name, gateways, [ip for h in hosts.values() for ip in (h.ip, h.ip6)])
        wait_for(
            "unbound to answer mox2.example SOA with AD (DNSSEC-validated)",
            lambda: dns_authentic(ips["dns"], MOX2_DOMAIN, "SOA"),
            READY_TIMEOUT,
            hosts["dns"].logs,
        )
        timings["dns"] = time.monotonic() - t1
        wait_for("postfix SMTP greeting", lambda: smtp_banner(ips["postfix"]), READY_TIMEOUT, net.all_logs)
        timings["postfix"] = time.monotonic() - t1
        acme_ctx = ssl.create_default_context(cafile=str(ca_file))
        acme_dir = f"https://{ACME_HOST}:14000/dir"
        wait_for(f"pebble directory {acme_dir}", lambda: b"newOrder" in https_get(acme_dir, ips["acme"], acme_ctx), READY_TIMEOUT, hosts["acme"].logs)
        # pebble's issuing root is new at every start: clients of this run must trust this one (mox2
        # for mox1's certificates, the client for submission to mox1).
        root = https_get(f"https://{ACME_HOST}:15000/roots/0", ips["acme"], acme_ctx)
        for path in (state / "acme" / "root.pem", conf.parent / "pebble-root.pem", state / "client" / "acme-root.pem"):
            write(path, root)
        timings["acme"] = time.monotonic() - t1
        # mox1 asks pebble for its certificates at start: only once pebble answers.
        mox_c.start()
        mox1_c.start()
        wait_for("mox2 SMTP greeting", lambda: smtp_banner(ips["mox2"]), READY_TIMEOUT, hosts["mox2"].logs)
        wait_for("mox2 SMTP greeting over IPv6", lambda: smtp_banner(ips6["mox2"]), READY_TIMEOUT, hosts["mox2"].logs)
        wait_for("mox1 SMTP greeting", lambda: smtp_banner(ips["mox1"]), READY_TIMEOUT, hosts["mox1"].logs)
        wait_for("localserve SMTP greeting", lambda: smtp_banner(ips["localserve"], 1025), READY_TIMEOUT, hosts["localserve"].logs)
        timings["up"] = time.monotonic() - t1
        log(f"network up on {subnet}: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
        yield net
        t2 = time.monotonic()
    timings["down"] = time.monotonic() - t2
    log(f"network down in {timings['down']:.1f}s")


@pytest.fixture(scope="session")
def interop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """The running interop network, shared by all interop tests of a session; skipped without root/podman."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("interop")
    with start_network(state) as net:
        yield net


def main(argv: list[str]) -> int:
    """``interop_net.py serve STATE``: bring the network up, write STATE/env, keep it up until
    SIGTERM/SIGINT, then take it down (used by interop/run.sh). ``interop_net.py cleanup``: remove
    leftovers of runs whose process is gone."""
    import signal

    if argv[:1] == ["cleanup"]:
        remove_leftovers()
        return 0
    if len(argv) != 2 or argv[0] != "serve":
        sys.stderr.write("usage: interop_net.py serve STATE | cleanup\n")
        return 2

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    state = Path(argv[1])
    state.mkdir(parents=True, exist_ok=True)
    try:
        with start_network(state) as net:
            write(state / "env", net.env_text())
            log(f"up; environment in {state / 'env'}")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        (state / "env").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    # Run as a script from anywhere: the project's modules come from the repository.
    sys.path.insert(0, str(REPO))
    raise SystemExit(main(sys.argv[1:]))
