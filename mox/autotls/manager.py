"""Automatic TLS certificates with ACME (RFC 8555), per configured ACME provider.

A :class:`Manager` per entry of mox.conf's ``ACME`` section:

- keeps an account key at ``data/acme/<name>.key`` and certificates in
  ``data/acme/keycerts/<name>/`` (one file per host and key type: private key,
  then the chain), as upstream's layout;
- requests certificates for the allowed host names (the mail host name,
  ``mta-sts.<domain>``, ``autoconfig.<domain>``) in the background at start
  and renews them before expiry (``RenewBefore``, or a third of the lifetime);
  connections are never blocked waiting for the CA;
- answers tls-alpn-01 (RFC 8737) challenges in the SNI callback of every TLS
  listener using it, and http-01 challenges through the HTTP listener
  (``mox.http.web``).

The ACME protocol is the ``acme`` package (blocking, run in a worker thread).

Limitation, documented: Python's SNI callback cannot see the client's ALPN
list, so while a tls-alpn-01 validation for a host is pending (a few seconds),
a normal client asking for that host name gets the challenge certificate.
Orders are only made for hosts without a valid certificate, so this happens
at first issuance and at renewal only.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes as crypto_hashes

from mox import mlog
from mox.autotls import certs
from mox.config import model

log = mlog.new("autotls")

# How often certificates are checked for renewal, and the retry delays after failures.
CHECK_INTERVAL = 3600.0
RETRY_MIN = 60.0
RETRY_MAX = 3600.0
# Time allowed for one order: authorizations, validation and finalization.
ORDER_TIMEOUT = 120.0
USER_AGENT = "moxmail"


class ACMEError(Exception):
    """Obtaining a certificate failed."""


@dataclass
class _Pending:
    """Challenge state, shared between the ACME worker thread and the event loop."""

    http01: dict[str, str] = field(default_factory=dict)  # token -> key authorization
    alpn: dict[str, ssl.SSLContext] = field(default_factory=dict)  # host -> challenge context


def _chall_info(chall: Any) -> tuple[str, str]:
    """Type and token of a challenge. The acme package knows http-01 and dns-01; others,
    like tls-alpn-01, come as UnrecognizedChallenge holding the JSON object."""
    jobj = getattr(chall, "jobj", None)
    if isinstance(jobj, dict):
        return str(jobj.get("type", "")), str(jobj.get("token", ""))
    return str(chall.typ), str(chall.encode("token"))


class Manager:
    """Certificates from one ACME provider; see the module doc."""

    def __init__(
        self,
        name: str,
        conf: model.ACME,
        acme_dir: Path,
        *,
        host_keys: list[certs.PrivateKey] | None = None,
        ca_bundle: str | None = None,
        eab_key_file: Path | None = None,
        challenge_types: tuple[str, ...] = ("tls-alpn-01", "http-01"),
        minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.name = name
        self.conf = conf
        self.acme_dir = acme_dir
        self.cache_dir = acme_dir / "keycerts" / name
        self.ca_bundle = ca_bundle
        self.eab_key_file = eab_key_file
        self.challenge_types = challenge_types
        self.minimum_version = minimum_version
        self.now = now
        # The first key of each type from HostPrivateKeyFiles; without any, an ECDSA key per host.
        self.host_keys: dict[str, certs.PrivateKey] = {}
        for k in host_keys or []:
            self.host_keys.setdefault(certs.key_type(k), k)
        self.hosts: set[str] = set()
        self.fallback_host = ""
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._pending = _Pending()
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._client: Any = None  # acme.client.ClientV2, created on first order
        self._jwk: Any = None

    # Host names and TLS contexts.

    def set_hosts(self, hosts: set[str], fallback: str) -> None:
        """The host names certificates are requested for; fallback serves clients without SNI."""
        self.hosts = {h.lower().rstrip(".") for h in hosts}
        self.fallback_host = fallback.lower()
        self._load_contexts()
        self._wake.set()

    def _kinds(self) -> list[str]:
        return sorted(self.host_keys) if self.host_keys else ["ecdsa"]

    def _host_context(self, host: str) -> ssl.SSLContext | None:
        ctx: ssl.SSLContext | None = None
        for kind in self._kinds():
            c = certs.read_cache(self.cache_dir, host, kind)
            if c is None or c.not_after <= self.now():
                continue
            if ctx is None:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.minimum_version = self.minimum_version
            # Several chains in one context: OpenSSL picks one the client supports.
            ctx.load_cert_chain(str(c.path), str(c.path))
        return ctx

    def _load_contexts(self) -> None:
        contexts = {}
        for h in self.hosts:
            try:
                ctx = self._host_context(h)
            except (OSError, ssl.SSLError) as e:
                log.error("loading cached certificate", host=h, err=str(e))
                continue
            if ctx is not None:
                contexts[h] = ctx
        self._contexts = contexts

    def has_certificate(self, host: str) -> bool:
        return host.lower() in self._contexts

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context whose certificate is chosen per SNI host name.

        Unknown or missing SNI names get the fallback host's certificate, as
        upstream does for the mail host name.
        """
        base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        base.minimum_version = self.minimum_version

        def select(sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> int | None:
            host = (server_name or "").lower().rstrip(".")
            chall = self._pending.alpn.get(host)
            if chall is not None:
                sslobj.context = chall
                return None
            ctx = self._contexts.get(host) or self._contexts.get(self.fallback_host)
            if ctx is None:
                return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
            sslobj.context = ctx
            return None

        base.sni_callback = select
        return base

    def http01_response(self, token: str) -> str | None:
        """The key authorization for a pending http-01 challenge token (RFC 8555 section 8.3)."""
        return self._pending.http01.get(token)

    # Background work.

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"autotls-{self.name}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    def due(self) -> list[str]:
        """Hosts needing a (new) certificate now."""
        out = []
        rb = datetime.timedelta(microseconds=int(self.conf.RenewBefore) // 1000) if self.conf.RenewBefore else None
        for h in sorted(self.hosts):
            for kind in self._kinds():
                c = certs.read_cache(self.cache_dir, h, kind)
                if c is None or self.now() >= c.renew_at(rb):
                    out.append(h)
                    break
        return out

    async def ensure(self) -> list[str]:
        """Obtain certificates for every due host; returns the hosts that failed."""
        failed = []
        for h in self.due():
            try:
                await asyncio.to_thread(self.obtain, h)
            except Exception as e:
                log.errorx("obtaining certificate", e, acme=self.name, host=h)
                failed.append(h)
            else:
                log.info("certificate obtained", acme=self.name, host=h)
        self._load_contexts()
        return failed

    async def _run(self) -> None:
        retry = RETRY_MIN
        while True:
            self._wake.clear()
            failed = await self.ensure()
            delay = CHECK_INTERVAL
            if failed:
                delay, retry = retry, min(retry * 2, RETRY_MAX)
            else:
                retry = RETRY_MIN
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass

    # The ACME protocol, in a worker thread.

    def _account_key(self) -> certs.PrivateKey:
        from mox.config.load import write_file_atomic

        p = self.acme_dir / f"{self.name}.key"
        try:
            return certs.load_key(p.read_bytes(), f"acme account key {p}")
        except FileNotFoundError:
            key = certs.generate_key("ecdsa")
            self.acme_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_file_atomic(p, certs.key_pem(key), 0o600)
            return key

    def _acme_client(self) -> Any:
        import josepy
        from acme import client, errors, messages

        if self._client is not None:
            return self._client
        key = self._account_key()
        if isinstance(key, certs.rsa.RSAPrivateKey):
            jwk: Any = josepy.JWKRSA(key=key)
            alg: Any = josepy.RS256
        else:
            jwk, alg = josepy.JWKEC(key=key), josepy.ES256
        # verify_ssl is handed to requests' "verify", which also takes a CA bundle path.
        verify: Any = self.ca_bundle or True
        net = client.ClientNetwork(jwk, alg=alg, verify_ssl=verify, user_agent=USER_AGENT)
        directory = client.ClientV2.get_directory(self.conf.DirectoryURL, net)
        acme = client.ClientV2(directory, net)
        eab = None
        if self.conf.ExternalAccountBinding is not None:
            eab = self._eab(directory, jwk)
        reg = messages.NewRegistration.from_data(
            email=self.conf.ContactEmail, terms_of_service_agreed=True, external_account_binding=eab
        )
        try:
            acme.new_account(reg)
        except errors.ConflictError as e:
            # The key already has an account: use it (RFC 8555 section 7.3.1).
            net.account = acme.query_registration(messages.RegistrationResource(uri=e.location, body=messages.Registration()))
        self._client, self._jwk = acme, jwk
        return acme

    def _eab(self, directory: Any, jwk: Any) -> Any:
        """External account binding (RFC 8555 section 7.3.4) with the configured key ID and key file."""
        from acme import messages

        eab_conf = self.conf.ExternalAccountBinding
        assert eab_conf is not None
        if self.eab_key_file is None:
            raise ACMEError("external account binding configured without a key file")
        # The file holds the base64url-encoded MAC key, as the provider hands it out.
        hmac_key = self.eab_key_file.read_text().strip()
        return messages.ExternalAccountBinding.from_data(
            account_public_key=jwk.public_key(), kid=eab_conf.KeyID, hmac_key=hmac_key, directory=directory
        )

    def _host_key(self, host: str, kind: str) -> certs.PrivateKey:
        if kind in self.host_keys:
            return self.host_keys[kind]
        return certs.cached_key(self.cache_dir, host, kind) or certs.generate_key(kind)

    def obtain(self, host: str) -> None:
        """Order, validate and store certificates for host, one per key type (blocking)."""
        with self._lock:
            for kind in self._kinds():
                self._obtain_kind(host, kind)

    def _obtain_kind(self, host: str, kind: str) -> None:
        import josepy
        from acme import challenges, crypto_util, errors, messages

        acme = self._acme_client()
        key = self._host_key(host, kind)
        csr = crypto_util.make_csr(certs.key_pem(key), [host])
        try:
            order = acme.new_order(csr)
        except errors.Error as e:
            raise ACMEError(f"new order for {host}: {e}") from e
        cleanups: list[Callable[[], object]] = []
        try:
            for authz in order.authorizations:
                if authz.body.status == messages.STATUS_VALID:
                    continue
                challb = self._pick_challenge(authz)
                typ, token = _chall_info(challb.chall)
                thumb = josepy.b64encode(self._jwk.thumbprint(hash_function=crypto_hashes.SHA256)).decode()
                keyauth = f"{token}.{thumb}"
                if typ == "http-01":
                    self._pending.http01[token] = keyauth
                    cleanups.append(functools.partial(self._pending.http01.pop, token, ""))
                else:
                    cert_pem, key_pem = certs.challenge_cert(host, keyauth)
                    self._pending.alpn[host] = self._challenge_context(cert_pem, key_pem)
                    cleanups.append(functools.partial(self._pending.alpn.pop, host, None))
                # RFC 8555 section 7.5.1: the client POSTs an empty object to the challenge URL.
                acme.answer_challenge(challb, challenges.HTTP01Response())
            deadline = datetime.datetime.now() + datetime.timedelta(seconds=ORDER_TIMEOUT)
            try:
                order = acme.poll_and_finalize(order, deadline=deadline)
            except errors.ValidationError as e:
                details = "; ".join(
                    f"{a.body.identifier.value}: {c.error}" for a in e.failed_authzrs for c in a.body.challenges if c.error
                )
                raise ACMEError(f"validation for {host} failed: {details or e}") from e
            except (errors.Error, TimeoutError) as e:
                raise ACMEError(f"finalizing order for {host}: {e}") from e
        finally:
            for c in cleanups:
                c()
        certs.write_cache(self.cache_dir, host, key, order.fullchain_pem.encode())

    def _pick_challenge(self, authz: Any) -> Any:
        offered = {_chall_info(c.chall)[0]: c for c in authz.body.challenges}
        for typ in self.challenge_types:
            if typ in offered:
                return offered[typ]
        raise ACMEError(
            f"no usable challenge for {authz.body.identifier.value}: offered {sorted(offered)}, we do {list(self.challenge_types)}"
        )

    def _challenge_context(self, cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
        import tempfile

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols([certs.ACME_TLS_ALPN])
        # ssl only loads chains from files.
        with tempfile.NamedTemporaryFile(dir=self.acme_dir, suffix=".pem") as f:
            f.write(key_pem + cert_pem)
            f.flush()
            ctx.load_cert_chain(f.name, f.name)
        return ctx
