"""DKIM: DomainKeys Identified Mail signatures (RFC 6376), Ed25519 (RFC 8463), RFC 8301 crypto updates.

- :mod:`mox.dkim.verify`: :func:`verify` checks all DKIM-Signature headers of
  a message, one :class:`Result` each (pass/fail/neutral/policy/temperror/permerror/none).
- :mod:`mox.dkim.sign`: :func:`sign` makes the DKIM-Signature headers for
  outgoing mail from the config's selectors.
- :mod:`mox.dkim.record`: key records in DNS, :func:`txt_record` for publishing a key.
- :mod:`mox.dkim.keys`: key generation and PEM handling.
- :mod:`mox.dkim.signature`, :mod:`mox.dkim.canon`: the header field and the
  hashes (canonicalization from dkimpy).

Key lookups go through ``mox.dns`` on the event loop; CPU work runs in a
thread. See :mod:`mox.dkim.verify` for how and why.
"""

from mox.dkim.canon import MessageError
from mox.dkim.keys import generate_ed25519_key, generate_rsa_key, load_private_key_pem, private_key_pem
from mox.dkim.record import Record, RecordError, parse_record, record_for_key, txt_record
from mox.dkim.sign import DEFAULT_HEADERS, SignError, SignSelector, selector_from_config, sign, sign_async
from mox.dkim.signature import Signature, SignatureError, parse_signature
from mox.dkim.verify import (
    MAX_SIGNATURES,
    KeyLookup,
    Policy,
    Result,
    Status,
    default_policy,
    lookup_record,
    verify,
)

__all__ = [
    "DEFAULT_HEADERS",
    "MAX_SIGNATURES",
    "KeyLookup",
    "MessageError",
    "Policy",
    "Record",
    "RecordError",
    "Result",
    "SignError",
    "SignSelector",
    "Signature",
    "SignatureError",
    "Status",
    "default_policy",
    "generate_ed25519_key",
    "generate_rsa_key",
    "load_private_key_pem",
    "lookup_record",
    "parse_record",
    "parse_signature",
    "private_key_pem",
    "record_for_key",
    "selector_from_config",
    "sign",
    "sign_async",
    "txt_record",
    "verify",
]
