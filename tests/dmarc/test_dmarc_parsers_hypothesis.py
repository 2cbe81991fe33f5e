from hypothesis import given
from hypothesis import strategies as st

from mox.dmarc import RecordError, parse_record

DMARCISH = st.text(
    alphabet=st.sampled_from(list("vp=; \tDMARC1nonequarantinerejectsprua:mailto@.!0123456789kmadkimfo,"))
)


@given(st.one_of(st.text(), DMARCISH.map(lambda s: "v=DMARC1;" + s)))
def test_parse_record_errors_cleanly(text: str) -> None:
    for required in (True, False):
        try:
            r, ok = parse_record(text, require_policy=required)
        except RecordError:
            continue
        if ok:
            assert r is not None
            # What we write parses back to the same record.
            assert parse_record(r.text(), require_policy=required)[0] == r
