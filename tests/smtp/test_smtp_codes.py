from hypothesis import given
from hypothesis import strategies as st

from mox.smtp import codes as c
from mox.smtp.codes import Reply, ReplyError


def test_single_line_reply_carries_enhanced_code_with_class_from_reply_code() -> None:
    assert Reply(250, c.SE_ADDR1_OTHER_0, ("ok",)).encode() == b"250 2.1.0 ok\r\n"
    assert Reply(550, c.SE_ADDR1_OTHER_0, ("no",)).encode() == b"550 5.1.0 no\r\n"
    assert Reply(451, c.SE_SYS3_OTHER_0, ("later",)).encode() == b"451 4.3.0 later\r\n"


def test_multi_line_reply_repeats_code_and_enhanced_code_on_every_line() -> None:
    r = Reply.make(554, c.SE_MSG6_OTHER_0, "first\nsecond\nthird")
    assert r.encode() == b"554-5.6.0 first\r\n554-5.6.0 second\r\n554 5.6.0 third\r\n"


def test_reply_without_enhanced_codes_when_extension_off() -> None:
    assert Reply(250, c.SE_OTHER_0_0, ("ok",)).encode(enhanced_status_codes=False) == b"250 ok\r\n"


def test_reply_without_enhanced_code_and_empty_text() -> None:
    assert Reply(334, "", ("",)).encode() == b"334\r\n"
    assert Reply(354, "", ("go",)).encode() == b"354 go\r\n"


def test_full_enhanced_code_is_kept() -> None:
    assert Reply(250, "2.1.5", ("x",)).encode() == b"250 2.1.5 x\r\n"


def test_long_line_is_wrapped_below_512_octets() -> None:
    text = " ".join(["word"] * 300)
    data = Reply(550, c.SE_POL7_OTHER_0, (text,)).encode()
    lines = data.split(b"\r\n")[:-1]
    assert len(lines) > 1
    assert all(len(line) + 2 <= c.MAX_REPLY_LINE for line in lines)
    assert all(line.startswith(b"550-5.7.0 ") for line in lines[:-1])
    assert lines[-1].startswith(b"550 5.7.0 ")
    joined = b" ".join(line[10:] for line in lines).decode()
    assert joined.split() == text.split()


def test_crlf_in_text_cannot_inject_reply_lines() -> None:
    data = Reply(550, c.SE_POL7_OTHER_0, ("a\r\n250 ok",)).encode()
    assert data.count(b"\r\n") == 1


def test_reply_error_carries_reply() -> None:
    e = ReplyError(501, c.SE_PROTO5_SYNTAX_2, "bad")
    assert e.reply == Reply(501, "5.2", ("bad",))
    assert e.reply.is_error()


@given(st.text(max_size=1500), st.integers(min_value=200, max_value=599))
def test_any_text_encodes_to_valid_reply_lines(text: str, code: int) -> None:
    data = Reply.make(code, c.SE_OTHER_0_0, text.replace("\x00", "")).encode()
    lines = data.split(b"\r\n")
    assert lines[-1] == b""
    lines = lines[:-1]
    assert all(len(line) + 2 <= c.MAX_REPLY_LINE for line in lines)
    assert all(line.startswith(str(code).encode() + b"-") for line in lines[:-1])
    assert lines[-1][:4] in (str(code).encode() + b" ", str(code).encode())
