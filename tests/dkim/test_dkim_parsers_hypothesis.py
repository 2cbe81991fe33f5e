"""Parsers meet arbitrary input: a clear error, never another exception."""

from hypothesis import given, settings
from hypothesis import strategies as st

from mox.dkim import MessageError, RecordError, SignatureError, parse_record, parse_signature, verify
from mox.dkim.canon import split_message
from mox.dns import MockResolver

TAGISH = st.text(
    alphabet=st.sampled_from(list("vakpsthbdlixq=;: \t\r\n/+-_.@DKIM1rsaed25519sha256relaxedsimple"))
)


@given(st.one_of(st.text(), TAGISH))
def test_parse_record_errors_cleanly(text: str) -> None:
    try:
        parse_record(text)
    except RecordError as e:
        assert str(e), f"{type(e).__name__} without a message"  # Bad input gets a clear error.


@given(st.one_of(st.text(), TAGISH))
def test_parse_signature_errors_cleanly(text: str) -> None:
    try:
        parse_signature(text)
    except SignatureError as e:
        assert str(e), f"{type(e).__name__} without a message"  # Bad input gets a clear error.


@given(st.binary(max_size=400))
def test_split_message_errors_cleanly(data: bytes) -> None:
    try:
        split_message(data)
    except MessageError as e:
        assert str(e), f"{type(e).__name__} without a message"  # Bad input gets a clear error.


@settings(max_examples=50, deadline=None)
@given(st.one_of(TAGISH, st.text(max_size=200)))
async def test_verify_never_raises(sigvalue: str) -> None:
    msg = (
        "DKIM-Signature: "
        + sigvalue.replace("\r", " ").replace("\n", " ")
        + "\r\nFrom: a@example.org\r\n\r\nbody\r\n"
    ).encode()
    results = await verify(msg, MockResolver())
    assert len(results) == 1
