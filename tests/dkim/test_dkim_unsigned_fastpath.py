"""dkim.verify skips its worker thread for messages without a DKIM-Signature; the shortcut never hides one."""

from hypothesis import given
from hypothesis import strategies as st

from mox.dkim import verify as dkim_verify
from mox.dkim.verify import _may_be_signed, _prepare, default_policy
from mox.dns import MockResolver

NAMES = [b"From", b"To", b"Subject", b"DKIM-Signature", b"dkim-signature", b"X-DKIM-Signature-Note", b"Received"]
SIG = b"v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=YWJj; b=YWJj"


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    hdrs = draw(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from([SIG, b"x", b""])), max_size=5))
    head = eol.join(n + b": " + v for n, v in hdrs)
    body = draw(st.sampled_from([b"", b"hi" + eol, b"DKIM-Signature: " + SIG + eol]))
    sep = draw(st.sampled_from([eol + eol, eol, b"", b" \x00junk" + eol + eol]))
    return head + sep + body


@given(messages())
def test_fastpath_never_hides_a_result(data: bytes) -> None:
    if not _may_be_signed(data):
        prep = _prepare(data, default_policy, 1_700_000_000)
        assert prep.results == [] and prep.pending == []


async def test_unsigned_and_signed_messages() -> None:
    unsigned = b"From: a@example.org\r\nSubject: x\r\n\r\nhi\r\n"
    assert not _may_be_signed(unsigned)
    assert await dkim_verify(unsigned, MockResolver()) == []
    # A mention in the first 64 KiB of the body takes the full path (as a message that does not
    # parse would), which finds no signature either.
    mention = b"From: a@example.org\r\n\r\nDKIM-Signature: in the body is no signature\r\n"
    assert _may_be_signed(mention)
    assert await dkim_verify(mention, MockResolver()) == []
    signed = b"dKiM-SiGnAtUrE: " + SIG + b"\r\nFrom: a@example.org\r\n\r\nhi\r\n"
    assert _may_be_signed(signed)
    res = await dkim_verify(signed, MockResolver())
    assert len(res) == 1  # a (failing) result for the signature: it was not skipped
    # Header section larger than the scan limit: no shortcut.
    assert _may_be_signed(b"X: " + b"a" * (2 << 20))
