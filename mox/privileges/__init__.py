"""Starting as root: bind the listening sockets, fix file ownership and permissions, then become the mox user.

``mox serve`` started as root (to bind ports below 1024) calls
:func:`start_as_root` before it opens any data: it loads the TLS certificates
and keys (so they need not be readable by the mox user), binds every listener
socket, by default fixes the ownership and permissions of the config and data
directories (:func:`fix_permissions`, logging each change; ``NoFixPermissions``
turns that off), and then switches to the configured ``User`` for good
(:func:`drop_privileges`: supplementary groups, gid, uid). Upstream mox forks a
child that receives the sockets; one Python process changing its own
credentials gives the same result: nothing after the switch runs as root.

When the configured user is root itself, nothing changes. Started as another
user, the server runs as that user and binds what it may.

:func:`service_unit` is ``mox config printservice``: a systemd unit that starts
mox as root with only the capabilities it needs, and the hardening options.
"""

from __future__ import annotations

import os
import pwd
import socket
import ssl
import stat
from dataclasses import dataclass, field
from pathlib import Path

from mox import mlog
from mox.config.load import Config

log = mlog.new("privileges")

# Modes as upstream sets them: directories setgid and group-readable (the group is root),
# files readable by the group, nothing for others.
DIR_MODE = stat.S_ISGID | 0o750
FILE_MODE = 0o640
# Files keep the group/other bits masked for everything created after the switch.
UMASK = 0o007


class PrivilegeError(Exception):
    """Starting as root failed; the message says which step and why."""


@dataclass
class Change:
    path: str
    what: str  # "owner" or "mode"
    old: str
    new: str


@dataclass
class Prebound:
    """What :func:`start_as_root` prepared: bound sockets by endpoint index, TLS contexts by listener."""

    sockets: dict[int, socket.socket] = field(default_factory=dict)
    contexts: dict[str, ssl.SSLContext | None] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)

    def close(self) -> None:
        for s in self.sockets.values():
            s.close()
        self.sockets.clear()


def _ensure(p: Path, uid: int, gid: int, mode: int, changes: list[Change]) -> bool:
    """Set owner and mode of one path; returns whether anything had to change."""
    st = os.lstat(p)
    if stat.S_ISLNK(st.st_mode):
        return False
    changed = False
    if (st.st_uid, st.st_gid) != (uid, gid):
        try:
            os.chown(p, uid, gid)
            changes.append(Change(str(p), "owner", f"{st.st_uid}:{st.st_gid}", f"{uid}:{gid}"))
        except OSError as e:
            log.errorx("fixing owner, continuing", e, path=str(p))
        changed = True
    cur = st.st_mode & (stat.S_ISGID | 0o777)
    if cur != mode:
        try:
            os.chmod(p, mode)
            changes.append(Change(str(p), "mode", f"{cur:04o}", f"{mode:04o}"))
        except OSError as e:
            log.errorx("fixing mode, continuing", e, path=str(p))
        changed = True
    return changed


def fix_permissions(config_dir: Path, data_dir: Path, uid: int) -> list[Change]:
    """Make config_dir and data_dir owned by uid (group root), directories 2750, files 0640, as upstream.

    The trees are only walked when their top directory needed a change, so a
    large data directory is not visited at every start. Every change is logged.
    """
    changes: list[Change] = []
    for top in (config_dir, data_dir):
        if not _ensure(top, uid, 0, DIR_MODE, changes):
            continue
        log.print("fixing ownership and permissions below directory", dir=str(top))
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames:
                _ensure(Path(dirpath) / name, uid, 0, DIR_MODE, changes)
            for name in filenames:
                p = Path(dirpath) / name
                # The ctl socket and other special files keep their mode; sockets are made 0600 by their owner.
                if stat.S_ISREG(os.lstat(p).st_mode):
                    _ensure(p, uid, 0, FILE_MODE, changes)
                else:
                    _ensure(p, uid, 0, os.lstat(p).st_mode & 0o7777, changes)
    for ch in changes:
        log.print("fixed " + ch.what, path=ch.path, old=ch.old, new=ch.new)
    return changes


def drop_privileges(uid: int, gid: int) -> None:
    """Become uid/gid for good: supplementary groups of the user (or none), gid, then uid.

    Raises:
        PrivilegeError: a step failed, or root could be regained.
    """
    try:
        name = pwd.getpwuid(uid).pw_name
        groups = os.getgrouplist(name, gid)
    except KeyError:
        groups = [gid]
    try:
        os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise PrivilegeError(f"switching to uid {uid} gid {gid}: {e}") from None
    if uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:
            raise PrivilegeError("could regain root after dropping privileges")
    os.umask(UMASK)


def searchable_by(path: Path, uid: int, gid: int) -> Path | None:
    """The first directory on the way to path (itself included) that uid/gid cannot enter, or None."""
    groups = {gid}
    try:
        groups.update(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
    except KeyError:
        pass
    p = Path(path).absolute()
    for d in [*reversed(p.parents), p]:
        try:
            st = os.stat(d)
        except OSError:
            return d
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if stat.S_ISDIR(st.st_mode) and not st.st_mode & bit:
            return d
    return None


def check_python_readable(uid: int, gid: int) -> None:
    """Fail clearly when the user cannot read the Python installation or mox itself.

    After the switch, modules imported later would otherwise fail in odd
    places, e.g. with Python installed under /root.

    Raises:
        PrivilegeError: naming the directory that is in the way.
    """
    import mox

    for what, path in (("the Python standard library", Path(os.__file__).parent), ("mox", Path(mox.__file__).parent)):
        blocked = searchable_by(path, uid, gid)
        if blocked is not None:
            raise PrivilegeError(
                f"uid {uid} cannot read {what} in {path}: directory {blocked} is not searchable for it; install Python "
                "and mox where that user can read them, or start mox as that user"
            )


def start_as_root(cfg: Config) -> Prebound | None:
    """The root part of ``mox serve``: certificates, sockets, permissions, then the switch to ``User``.

    Returns None when not running as root or when the configured user is root
    (nothing to prepare). Raises ListenError (a socket) or PrivilegeError.
    """
    from mox.serve.listeners import bind_endpoint, plan_endpoints, tls_context

    if os.geteuid() != 0:
        return None
    uid, gid = cfg.static.UID, cfg.static.GID
    if uid == 0:
        log.info("configured user is root, not dropping privileges")
        return None
    log.print(
        "starting as root, binding listeners before switching user",
        user=cfg.static.User or "mox",
        uid=uid,
        gid=gid,
    )
    check_python_readable(uid, gid)
    pre = Prebound()
    try:
        data_dir = cfg.data_dir
        data_dir.mkdir(mode=0o770, parents=True, exist_ok=True)
        if not cfg.static.NoFixPermissions:
            pre.changes = fix_permissions(cfg.config_dir, data_dir, uid)
        for i, ep in enumerate(plan_endpoints(cfg)):
            tls = cfg.static.Listeners[ep.listener].TLS
            # KeyCerts are read now; certificates from ACME come later from the data directory.
            if ep.listener not in pre.contexts and not (tls is not None and tls.ACME):
                pre.contexts[ep.listener] = tls_context(cfg, ep.listener)
            pre.sockets[i] = bind_endpoint(ep)
        drop_privileges(uid, gid)
    except BaseException:
        pre.close()
        raise
    log.print("switched to unprivileged user", uid=os.getuid(), gid=os.getgid())
    return pre


# The systemd unit.

# Capabilities root needs to start: bind low ports, switch user and group, and
# fix ownership/permissions of files it does not own. Nothing else.
CAPABILITIES = "CAP_SETUID CAP_SETGID CAP_NET_BIND_SERVICE CAP_CHOWN CAP_FSETID CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_KILL"


def service_unit(workdir: str, command: str) -> str:
    """A systemd service for mox in workdir (config/ and data/ below it), started by command (the mox program)."""
    wd = workdir.rstrip("/") or "/"
    return f"""[Unit]
Description=moxmail mail server
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
UMask=007
LimitNOFILE=65535
# Starts as root to bind ports 25, 443 and others, then switches to the configured User (default mox).
WorkingDirectory={wd}
ExecStart={command} -config {wd}/config/mox.conf serve
ExecStop={command} -config {wd}/config/mox.conf stop
Restart=always
RestartSec=5s
SyslogFacility=mail

# Hardening: only the config and data directories are writable, only the capabilities needed to start.
PrivateDevices=yes
PrivateTmp=yes
ProtectSystem=strict
ReadWritePaths={wd}/config {wd}/data
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
AmbientCapabilities=
CapabilityBoundingSet={CAPABILITIES}
NoNewPrivileges=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RemoveIPC=yes
LockPersonality=yes
DevicePolicy=closed
SystemCallArchitectures=native
SystemCallFilter=@system-service
# Not MemoryDenyWriteExecute: Python's ctypes and some extension modules need writable+executable memory.
# Not RestrictSUIDSGID: the config and data directories are setgid.

[Install]
WantedBy=multi-user.target
"""
