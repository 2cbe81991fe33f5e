"""Account password secrets, never the password itself (DESIGN.md section 5).

One password gives four secrets, one per way of logging in, as upstream mox
keeps them (store.Password):

- a bcrypt hash, for SASL PLAIN and LOGIN, IMAP LOGIN and the web login;
- SCRAM-SHA-1 and SCRAM-SHA-256 credentials: salt, iteration count,
  StoredKey and ServerKey (RFC 5802 section 3, RFC 7677); see
  :mod:`mox.scram` for why not SaltedPassword as upstream stores;
- CRAM-MD5 (RFC 2195): the HMAC-MD5 (RFC 2104) inner and outer MD5 states
  after the first block, ``key XOR ipad`` and ``key XOR opad``. Finishing the
  two hashes over a challenge gives HMAC-MD5(password, challenge) without the
  password. hashlib can neither export nor resume an MD5 state, so the MD5
  compression function and finalisation of RFC 1321 are written out here.
  These midstates are password-equivalent for CRAM-MD5 (as any CRAM-MD5
  server secret is), not for the other mechanisms.

Normalisation: the password is prepared with the PRECIS OpaqueString profile
(RFC 8265 section 4.2, :func:`mox.scram.prep.opaque_string`: non-ASCII spaces
to U+0020, NFC, controls and unassigned code points refused), as upstream
does, before any of the four secrets is made, and again before a PLAIN
password is checked.

Storage: :meth:`PasswordSecrets.to_json` gives one JSON object, binary values
in standard base64::

    {"version": 1,
     "bcrypt": "$2b$10$...",
     "scram_sha1": {"salt": "...", "iterations": 8192, "stored_key": "...", "server_key": "..."},
     "scram_sha256": {"salt": "...", "iterations": 4096, "stored_key": "...", "server_key": "..."},
     "cram_md5": {"inner": "...", "outer": "..."}}

The bcrypt hash is kept as its own text (modular crypt format), not base64.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

import bcrypt

from mox.scram import SHA1, SHA256, ScramCredentials, ScramHash
from mox.scram.prep import PrepError, opaque_string

__all__ = [
    "BCRYPT_COST",
    "MD5_INITIAL_STATE",
    "MIN_PASSWORD_BYTES",
    "CramMD5Secret",
    "PasswordError",
    "PasswordSecrets",
    "cram_md5_verify",
    "make_secrets",
    "md5_compress",
    "md5_resume",
    "prepare_password",
    "verify_plain",
]

# bcrypt work factor: 10, Go's bcrypt.DefaultCost, which upstream uses. About
# 50-100 ms per check on current hardware: slow for an offline attack, cheap
# enough for logins (which are rate limited per IP). Python's bcrypt defaults
# to 12; tests pass a lower cost.
BCRYPT_COST = 10
# bcrypt uses at most 72 bytes of a password; the bcrypt package (like Go's
# since 2023) refuses longer ones rather than silently ignoring the rest.
BCRYPT_MAX_PASSWORD_BYTES = 72
# Upstream refuses passwords shorter than 8 bytes (after normalisation).
MIN_PASSWORD_BYTES = 8

JSON_VERSION = 1


class PasswordError(ValueError):
    """A password that cannot be set: refused by OpaqueString, too short or too long."""


def prepare_password(password: str) -> str:
    """Normalise a password with PRECIS OpaqueString (RFC 8265 section 4.2).

    Raises:
        PasswordError: the profile refuses it (empty, controls, unassigned code points, ...).
    """
    try:
        return opaque_string(password)
    except PrepError as e:
        raise PasswordError(f"password not allowed by precis: {e}") from None


# ---------------------------------------------------------------------------
# MD5, RFC 1321, resumable from a midstate.

MD5_BLOCK_SIZE = 64
# RFC 1321 section 3.3: A, B, C, D, stored as the digest is, little-endian words.
MD5_INITIAL_STATE = struct.pack("<4I", 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)

_MASK = 0xFFFFFFFF
# RFC 1321 section 3.4: T[i] = floor(4294967296 * abs(sin(i))), i = 1..64.
_MD5_T = tuple(int(4294967296 * abs(math.sin(i))) & _MASK for i in range(1, 65))
# Per-step shift amounts, rounds 1 to 4.
_MD5_S = (7, 12, 17, 22) * 4 + (5, 9, 14, 20) * 4 + (4, 11, 16, 23) * 4 + (6, 10, 15, 21) * 4
# Word of the block each step reads: k, 5k+1, 3k+5, 7k (mod 16) in rounds 1 to 4.
_MD5_K = (
    tuple(range(16))
    + tuple((5 * i + 1) % 16 for i in range(16))
    + tuple((3 * i + 5) % 16 for i in range(16))
    + tuple((7 * i) % 16 for i in range(16))
)


def md5_compress(state: bytes, block: bytes) -> bytes:
    """Process one 64-byte block (RFC 1321 section 3.4); state is 16 bytes, as :data:`MD5_INITIAL_STATE`."""
    if len(state) != 16 or len(block) != MD5_BLOCK_SIZE:
        raise ValueError("md5: state must be 16 bytes and block 64 bytes")
    a0, b0, c0, d0 = struct.unpack("<4I", state)
    x = struct.unpack("<16I", block)
    a, b, c, d = a0, b0, c0, d0
    for i in range(64):
        if i < 16:
            f = (b & c) | (~b & d)  # F(X,Y,Z) = XY v not(X) Z
        elif i < 32:
            f = (b & d) | (c & ~d)  # G(X,Y,Z) = XZ v Y not(Z)
        elif i < 48:
            f = b ^ c ^ d  # H(X,Y,Z) = X xor Y xor Z
        else:
            f = c ^ (b | ~d)  # I(X,Y,Z) = Y xor (X v not(Z))
        t = (a + (f & _MASK) + x[_MD5_K[i]] + _MD5_T[i]) & _MASK
        s = _MD5_S[i]
        # a = b + ((a + F(b,c,d) + X[k] + T[i]) <<< s), then the words rotate.
        a, b, c, d = d, (b + ((t << s) | (t >> (32 - s)))) & _MASK, b, c
    return struct.pack("<4I", (a0 + a) & _MASK, (b0 + b) & _MASK, (c0 + c) & _MASK, (d0 + d) & _MASK)


def md5_resume(state: bytes, prefix_length: int, data: bytes) -> bytes:
    """The MD5 digest of a message whose first prefix_length bytes gave midstate state, ending with data.

    Args:
        state: the MD5 state after the prefix (:data:`MD5_INITIAL_STATE` for none).
        prefix_length: bytes already hashed into state, a multiple of 64.
        data: the rest of the message.

    Returns:
        The 16-byte digest.
    """
    if prefix_length % MD5_BLOCK_SIZE:
        raise ValueError("md5: prefix length must be a multiple of the block size")
    total = prefix_length + len(data)
    # RFC 1321 section 3.1 and 3.2: a 1 bit, zeros up to 56 mod 64, the bit length as 64-bit little-endian.
    padded = data + b"\x80" + b"\x00" * ((55 - total) % 64) + struct.pack("<Q", (total * 8) & (2**64 - 1))
    for i in range(0, len(padded), MD5_BLOCK_SIZE):
        state = md5_compress(state, padded[i : i + MD5_BLOCK_SIZE])
    return state


# ---------------------------------------------------------------------------
# CRAM-MD5, RFC 2195, over HMAC-MD5, RFC 2104.


@dataclass(frozen=True)
class CramMD5Secret:
    """HMAC-MD5 midstates for CRAM-MD5: MD5 states after ``key XOR ipad`` and ``key XOR opad`` (16 bytes each)."""

    inner: bytes
    outer: bytes

    def __post_init__(self) -> None:
        if len(self.inner) != 16 or len(self.outer) != 16:
            raise ValueError("cram-md5 secret: midstates must be 16 bytes")

    @classmethod
    def from_key(cls, key: bytes) -> CramMD5Secret:
        """Midstates for an HMAC-MD5 key (the password's UTF-8 bytes)."""
        # RFC 2104 section 2: a key longer than the block is hashed first,
        # then zero-padded to the block size and XORed with ipad (0x36) and
        # opad (0x5c).
        if len(key) > MD5_BLOCK_SIZE:
            key = md5_resume(MD5_INITIAL_STATE, 0, key)
        key = key.ljust(MD5_BLOCK_SIZE, b"\x00")
        return cls(
            inner=md5_compress(MD5_INITIAL_STATE, bytes(k ^ 0x36 for k in key)),
            outer=md5_compress(MD5_INITIAL_STATE, bytes(k ^ 0x5C for k in key)),
        )

    def hmac(self, challenge: bytes) -> bytes:
        """HMAC-MD5(key, challenge) = MD5(key^opad, MD5(key^ipad, challenge)) (RFC 2104 section 2)."""
        inner = md5_resume(self.inner, MD5_BLOCK_SIZE, challenge)
        return md5_resume(self.outer, MD5_BLOCK_SIZE, inner)


_CRAM_MD5_RESPONSE = re.compile(r"[0-9a-f]{32}")


def cram_md5_verify(secret: CramMD5Secret, challenge: bytes, response_hex: str) -> bool:
    """Whether response_hex is the CRAM-MD5 digest of challenge with the secret's password.

    Args:
        secret: the account's stored midstates.
        challenge: the challenge the server sent, e.g. ``b"<1896.697170952@postoffice.example>"``.
        response_hex: the digest part of the client's "user digest" reply:
            32 lower-case hex digits (RFC 2195 section 2), as upstream
            requires too; anything else does not verify.
    """
    if not _CRAM_MD5_RESPONSE.fullmatch(response_hex):
        return False
    return hmac.compare_digest(secret.hmac(challenge), bytes.fromhex(response_hex))


# ---------------------------------------------------------------------------
# The secrets of one account.


@dataclass(frozen=True)
class PasswordSecrets:
    """Everything stored for an account's password (see the module docstring)."""

    bcrypt_hash: bytes
    scram_sha1: ScramCredentials
    scram_sha256: ScramCredentials
    cram_md5: CramMD5Secret

    def scram(self, h: ScramHash) -> ScramCredentials:
        """The SCRAM credentials for hash h, for :class:`mox.scram.ScramServer`'s lookup."""
        return self.scram_sha256 if h == SHA256 else self.scram_sha1

    def to_json(self) -> str:
        """The secrets as one JSON object (format in the module docstring)."""

        def scram(c: ScramCredentials) -> dict[str, Any]:
            return {
                "salt": _b64(c.salt),
                "iterations": c.iterations,
                "stored_key": _b64(c.stored_key),
                "server_key": _b64(c.server_key),
            }

        return json.dumps(
            {
                "version": JSON_VERSION,
                "bcrypt": self.bcrypt_hash.decode("ascii"),
                "scram_sha1": scram(self.scram_sha1),
                "scram_sha256": scram(self.scram_sha256),
                "cram_md5": {"inner": _b64(self.cram_md5.inner), "outer": _b64(self.cram_md5.outer)},
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> PasswordSecrets:
        """Parse what :meth:`to_json` wrote.

        Raises:
            ValueError: not JSON, an unknown version, or a missing or malformed field.
        """
        try:
            obj = json.loads(text)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
            if obj.get("version") != JSON_VERSION:
                raise ValueError(f"unknown version {obj.get('version')!r}")
            bcrypt_hash = _text(obj["bcrypt"]).encode("ascii")
            if not _BCRYPT_HASH.fullmatch(bcrypt_hash):
                raise ValueError("malformed bcrypt hash")
            cram = obj["cram_md5"]
            return cls(
                bcrypt_hash=bcrypt_hash,
                scram_sha1=_scram_from_json(obj["scram_sha1"], SHA1),
                scram_sha256=_scram_from_json(obj["scram_sha256"], SHA256),
                cram_md5=CramMD5Secret(inner=_unb64(cram["inner"]), outer=_unb64(cram["outer"])),
            )
        except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error) as e:
            raise ValueError(f"password secrets: {e}") from None


# $2a$/$2b$/$2y$, two-digit cost, 22 characters of salt and 31 of hash.
_BCRYPT_HASH = re.compile(rb"\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _unb64(value: object) -> bytes:
    return base64.b64decode(_text(value), validate=True)


def _scram_from_json(obj: Any, h: ScramHash) -> ScramCredentials:
    iterations = obj["iterations"]
    if not isinstance(iterations, int) or isinstance(iterations, bool):
        raise TypeError("iterations is not an integer")
    creds = ScramCredentials(
        salt=_unb64(obj["salt"]),
        iterations=iterations,
        stored_key=_unb64(obj["stored_key"]),
        server_key=_unb64(obj["server_key"]),
    )
    if len(creds.stored_key) != h.digest_size:
        raise ValueError(f"{h.mechanism} keys have the wrong size")
    return creds


def make_secrets(
    password: str, *, scram_iterations: int | None = None, bcrypt_cost: int = BCRYPT_COST
) -> PasswordSecrets:
    """Derive all stored secrets from a new password.

    Args:
        password: the password as the user typed it; normalised first
            (:func:`prepare_password`).
        scram_iterations: PBKDF2 iteration count for both SCRAM hashes; by
            default each hash's own (8192 for SHA-1, 4096 for SHA-256, as
            upstream). Clients refuse fewer than 4096.
        bcrypt_cost: bcrypt work factor, 4 to 31; lower only in tests.

    Raises:
        PasswordError: the password is refused by OpaqueString, shorter than
            8 or longer than 72 bytes (bcrypt's limit) after normalisation.
    """
    prepared = prepare_password(password)
    raw = prepared.encode("utf-8")
    if len(raw) < MIN_PASSWORD_BYTES:
        raise PasswordError(f"password must be at least {MIN_PASSWORD_BYTES} bytes long")
    if len(raw) > BCRYPT_MAX_PASSWORD_BYTES:
        raise PasswordError(f"password must be at most {BCRYPT_MAX_PASSWORD_BYTES} bytes long")
    return PasswordSecrets(
        bcrypt_hash=bcrypt.hashpw(raw, bcrypt.gensalt(rounds=bcrypt_cost)),
        scram_sha1=ScramCredentials.derive(SHA1, prepared, iterations=scram_iterations),
        scram_sha256=ScramCredentials.derive(SHA256, prepared, iterations=scram_iterations),
        cram_md5=CramMD5Secret.from_key(raw),
    )


def verify_plain(secrets: PasswordSecrets, password: str) -> bool:
    """Whether password (from PLAIN, LOGIN or the web login) is the account's password.

    The comparison is bcrypt's, constant time. Takes bcrypt's time (tens of
    milliseconds): call it off the event loop.
    """
    try:
        raw = opaque_string(password).encode("utf-8")
    except PrepError:
        return False
    if len(raw) > BCRYPT_MAX_PASSWORD_BYTES:
        return False  # make_secrets never stored such a password.
    return bcrypt.checkpw(raw, secrets.bcrypt_hash)
