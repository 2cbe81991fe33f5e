import datetime
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mox.smtp import command as cmd
from mox.smtp.command import CommandError, UnknownCommandError, parse_command, xtext_decode, xtext_encode


def test_ehlo_domain_and_address_literals() -> None:
    h = parse_command("EHLO mail.example.org")
    assert (
        isinstance(h, cmd.Hello) and h.ehlo and h.domain is not None and h.domain.ascii == "mail.example.org"
    )
    h = parse_command("ehlo [192.0.2.1]")
    assert isinstance(h, cmd.Hello) and h.ip == ipaddress.ip_address("192.0.2.1")
    h = parse_command("EHLO [IPv6:2001:db8::1]")
    assert isinstance(h, cmd.Hello) and h.ip == ipaddress.ip_address("2001:db8::1")
    h = parse_command("HELO xn--caf-dma.example")
    assert (
        isinstance(h, cmd.Hello)
        and not h.ehlo
        and h.domain is not None
        and h.domain.unicode == "café.example"
    )


@pytest.mark.parametrize(
    "line",
    [
        "EHLO mail.example.org.",  # trailing dot
        "EHLO my_host.example",  # underscore
        "EHLO 192.0.2.1",  # IP without brackets
        "EHLO mail.example.org extra text",
        "EHLO mail.example.org  ",
        "HELO [192.0.2.1]",
    ],
)
def test_hello_violations_accepted_in_lax_mode_refused_in_pedantic(line: str) -> None:
    assert isinstance(parse_command(line), cmd.Hello)
    with pytest.raises(CommandError) as e:
        parse_command(line, pedantic=True)
    assert e.value.reply.code == 501


@pytest.mark.parametrize(
    "line", ["EHLO", "EHLO ", "EHLO -bad-.example", "EHLO [300.1.1.1]", "EHLO [IPv6:zz]", "EHLO [1.2.3.4"]
)
def test_hello_invalid(line: str) -> None:
    with pytest.raises(CommandError) as e:
        parse_command(line)
    assert e.value.reply.code == 501 and e.value.reply.full_enhanced == "5.5.2"


def test_mail_from_with_all_parameters() -> None:
    m = parse_command(
        "MAIL FROM:<user@example.org> SIZE=1000 BODY=8BITMIME SMTPUTF8 AUTH=<> RET=HDRS ENVID=QQ+2BR REQUIRETLS HOLDFOR=60"
    )
    assert isinstance(m, cmd.Mail)
    assert m.path is not None and m.path.localpart == "user" and m.path.domain is not None
    p = m.params
    assert (p.size, p.body, p.smtputf8, p.auth, p.ret, p.envid, p.requiretls, p.hold_for) == (
        1000,
        "8BITMIME",
        True,
        "<>",
        "HDRS",
        "QQ+R",
        True,
        60,
    )
    assert p.given == ("SIZE", "BODY", "SMTPUTF8", "AUTH", "RET", "ENVID", "REQUIRETLS", "HOLDFOR")


def test_mail_null_path_and_lowercase_keywords() -> None:
    m = parse_command("mail from:<> body=binarymime")
    assert isinstance(m, cmd.Mail) and m.path is None and m.params.body == "BINARYMIME"


def test_mail_holduntil() -> None:
    m = parse_command("MAIL FROM:<a@b.example> HOLDUNTIL=2030-01-02T03:04:05Z")
    assert isinstance(m, cmd.Mail)
    assert m.params.hold_until == datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    m = parse_command("MAIL FROM:<a@b.example> HOLDUNTIL=2030-01-02T03:04:05.5+02:00")
    assert isinstance(m, cmd.Mail) and m.params.hold_until is not None


def test_mail_utf8_address_requires_smtputf8_parameter() -> None:
    m = parse_command("MAIL FROM:<δοκιμή@παράδειγμα.example> SMTPUTF8")
    assert isinstance(m, cmd.Mail) and m.path is not None
    assert (
        m.path.localpart == "δοκιμή" and m.path.domain is not None and m.path.domain.ascii.startswith("xn--")
    )
    with pytest.raises(CommandError) as e:
        parse_command("MAIL FROM:<δοκιμή@example.org>")
    assert (e.value.reply.code, e.value.reply.full_enhanced) == (553, "5.6.7")
    with pytest.raises(CommandError) as e:
        parse_command("MAIL FROM:<user@παράδειγμα.example>")
    assert (e.value.reply.code, e.value.reply.full_enhanced) == (553, "5.6.7")
    # A-labels are plain ASCII and fine without SMTPUTF8.
    m = parse_command("MAIL FROM:<user@xn--hxajbheg2az3al.example>")
    assert isinstance(m, cmd.Mail) and m.path is not None and m.path.domain is not None
    assert m.path.domain.unicode == "παράδειγμα.example"


def test_mail_quoted_localpart_source_route_and_literal() -> None:
    m = parse_command('MAIL FROM:<"john smith>\\"x"@example.org> SIZE=1')
    assert isinstance(m, cmd.Mail) and m.path is not None and m.path.localpart == 'john smith>"x'
    assert m.params.size == 1
    m = parse_command("MAIL FROM:<@relay1.example,@relay2.example:user@example.org>")
    assert isinstance(m, cmd.Mail) and m.path is not None and str(m.path) == "user@example.org"
    m = parse_command("MAIL FROM:<user@[192.0.2.1]>")
    assert isinstance(m, cmd.Mail) and m.path is not None and m.path.ip == ipaddress.ip_address("192.0.2.1")
    assert m.path.xstring() == "user@[192.0.2.1]"


def test_space_after_colon_lax_only() -> None:
    assert isinstance(parse_command("MAIL FROM: <a@b.example>"), cmd.Mail)
    assert isinstance(parse_command("RCPT TO: <a@b.example>"), cmd.Rcpt)
    with pytest.raises(CommandError):
        parse_command("MAIL FROM: <a@b.example>", pedantic=True)


@pytest.mark.parametrize(
    ("line", "code", "ecode"),
    [
        ("MAIL FROM:a@b.example", 501, "5.1.7"),
        ("MAIL FROM:<a@b.example", 501, "5.1.7"),
        ("MAIL FROM:<a>", 501, "5.1.7"),
        ("MAIL FROM:<a..b@b.example>", 501, "5.1.7"),
        ("MAIL FROM:<.a@b.example>", 501, "5.1.7"),
        ("MAIL FROM:<a@>", 501, "5.1.7"),
        ("MAIL FROM:<a@b..example>", 501, "5.1.7"),
        ("MAIL FROM:<a@[1.2.3]>", 501, "5.1.7"),
        ('MAIL FROM:<"unterminated@b.example>', 501, "5.1.7"),
        ("MAIL FROM:<@relay.example,user@b.example>", 501, "5.1.7"),
        ("MAIL TO:<a@b.example>", 501, "5.5.2"),
        ("MAIL", 501, "5.5.2"),
        ("MAIL FROM:<a@b.example> SIZE=abc", 501, "5.5.4"),
        ("MAIL FROM:<a@b.example> SIZE=123456789012345678901", 501, "5.5.4"),
        ("MAIL FROM:<a@b.example> SIZE", 501, "5.5.4"),
        ("MAIL FROM:<a@b.example> SIZE=1 SIZE=2", 501, "5.5.4"),
        ("MAIL FROM:<a@b.example> BODY=9BIT", 555, "5.5.4"),
        ("MAIL FROM:<a@b.example> SMTPUTF8=yes", 501, "5.5.4"),
        ("MAIL FROM:<a@b.example> RET=ALL", 501, "5.5.4"),
        ("MAIL FROM:<a@b.example> ENVID=a+zz", 501, "5.5.4"),
        ("MAIL FROM:<a@b.example> ENVID=" + "a" * 101, 501, "5.5.4"),
        ("MAIL FROM:<a@b.example> HOLDFOR=1 HOLDUNTIL=2030-01-01T00:00:00Z", 501, "5.5.4"),
        ("MAIL FROM:<a@b.example> HOLDFOR=1234567890", 501, "5.5.4"),
        ("MAIL FROM:<a@b.example> HOLDUNTIL=tomorrow", 501, "5.5.4"),
        ("MAIL FROM:<a@b.example> FOO=bar", 555, "5.3.3"),
        ("MAIL FROM:<a@b.example> -X", 501, "5.5.2"),
        ("MAIL FROM:<a@b.example>SIZE=1", 501, "5.5.2"),
        ("RCPT TO:<>", 501, "5.1.3"),
        ("RCPT TO:<a@b.example> NOTIFY=NEVER,SUCCESS", 501, "5.5.4"),
        ("RCPT TO:<a@b.example> NOTIFY=SOMETIMES", 501, "5.5.4"),
        ("RCPT TO:<a@b.example> ORCPT=rfc822", 501, "5.5.4"),
        ("RCPT TO:<a@b.example> SIZE=1", 555, "5.3.3"),
        ("RCPT FROM:<a@b.example>", 501, "5.5.2"),
    ],
)
def test_mail_and_rcpt_invalid(line: str, code: int, ecode: str) -> None:
    with pytest.raises(CommandError) as e:
        parse_command(line)
    assert (e.value.reply.code, e.value.reply.full_enhanced) == (code, ecode), e.value.reply


def test_rcpt_postmaster_and_dsn_parameters() -> None:
    r = parse_command("RCPT TO:<Postmaster>")
    assert isinstance(r, cmd.Rcpt) and r.path.localpart == "postmaster" and r.path.is_postmaster_only()
    r = parse_command(
        "RCPT TO:<postmaster@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user+2Btag@example.org"
    )
    assert isinstance(r, cmd.Rcpt)
    assert r.params.notify == ("SUCCESS", "FAILURE")
    assert (r.params.orcpt_type, r.params.orcpt) == ("rfc822", "user+tag@example.org")
    r = parse_command("RCPT TO:<a@b.example> NOTIFY=never ORCPT=utf-8;\\x{3B4}@example.org")
    assert isinstance(r, cmd.Rcpt) and r.params.notify == ("NEVER",) and r.params.orcpt == "δ@example.org"


def test_rcpt_utf8_depends_on_transaction() -> None:
    with pytest.raises(CommandError) as e:
        parse_command("RCPT TO:<δ@example.org>")
    assert e.value.reply.code == 553
    r = parse_command("RCPT TO:<δ@example.org>", smtputf8=True)
    assert isinstance(r, cmd.Rcpt) and r.path.localpart == "δ"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("DATA", cmd.Data()),
        ("data", cmd.Data()),
        ("RSET", cmd.Rset()),
        ("NOOP", cmd.Noop()),
        ("NOOP anything goes", cmd.Noop()),
        ("QUIT", cmd.Quit()),
        ("STARTTLS", cmd.StartTLS()),
        ("HELP", cmd.Help("")),
        ("HELP MAIL", cmd.Help("MAIL")),
        ("VRFY user", cmd.Vrfy("user")),
        ("EXPN list SMTPUTF8", cmd.Expn("list SMTPUTF8")),
        ("BDAT 100", cmd.Bdat(100, False)),
        ("BDAT 0 LAST", cmd.Bdat(0, True)),
        ("bdat 5 last", cmd.Bdat(5, True)),
        ("AUTH PLAIN", cmd.Auth("PLAIN", None)),
        ("AUTH plain AHVzZXIAcGFzcw==", cmd.Auth("PLAIN", b"\x00user\x00pass")),
        ("AUTH EXTERNAL =", cmd.Auth("EXTERNAL", b"")),
        ("AUTH SCRAM-SHA-256-PLUS", cmd.Auth("SCRAM-SHA-256-PLUS", None)),
    ],
)
def test_simple_commands(line: str, expected: cmd.Command) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "DATA now",
        "QUIT please",
        "RSET x",
        "STARTTLS x",
        "VRFY",
        "BDAT",
        "BDAT x",
        "BDAT -1",
        "BDAT 1 FIRST",
        "BDAT 1 LAST more",
        "BDAT 1234567890123456789",
        "AUTH",
        "AUTH PLAIN not!base64",
        "AUTH PLAIN AAA",
        "AUTH ÄÖ",
        "AUTH A B C",
        "AUTH THIS-MECHANISM-NAME-IS-TOO-LONG",
    ],
)
def test_simple_commands_invalid(line: str) -> None:
    with pytest.raises(CommandError) as e:
        parse_command(line)
    assert e.value.reply.code == 501


def test_trailing_whitespace_lax_only() -> None:
    assert parse_command("DATA  ") == cmd.Data()
    assert parse_command("MAIL FROM:<a@b.example> SIZE=1 ") == parse_command("MAIL FROM:<a@b.example> SIZE=1")
    with pytest.raises(CommandError):
        parse_command("DATA ", pedantic=True)
    with pytest.raises(CommandError):
        parse_command("MAIL FROM:<a@b.example> ", pedantic=True)


def test_unknown_command() -> None:
    with pytest.raises(UnknownCommandError) as e:
        parse_command("GET / HTTP/1.1")
    assert (e.value.reply.code, e.value.reply.full_enhanced) == (500, "5.5.1")
    with pytest.raises(UnknownCommandError):
        parse_command("")


def test_pedantic_line_length() -> None:
    long_noop = "NOOP " + "x" * 600
    assert parse_command(long_noop) == cmd.Noop()
    with pytest.raises(CommandError) as e:
        parse_command(long_noop, pedantic=True)
    assert e.value.reply.code == 500
    # MAIL may carry extension parameters beyond 512 octets.
    long_mail = "MAIL FROM:<a@b.example> AUTH=" + "x" * 500
    assert isinstance(parse_command(long_mail, pedantic=True), cmd.Mail)


def test_xtext() -> None:
    assert xtext_decode("a+2Bb+3Dc") == "a+b=c"
    assert xtext_decode("a+2bb") == "a+b"
    with pytest.raises(CommandError):
        xtext_decode("a+2bb", lax=False)
    for bad in ["a=b", "a b", "+", "+2", "+G0", "+FF"]:
        with pytest.raises(CommandError):
            xtext_decode(bad)
    assert xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d"
    assert xtext_encode("é") == "+C3+A9"


@given(st.text(max_size=50))
def test_xtext_roundtrip(s: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return
    enc = xtext_encode(s)
    assert all("!" <= ch <= "~" and ch != "=" for ch in enc)
    assert xtext_decode(enc, lax=False) == s


@given(st.text(max_size=200))
def test_parse_command_raises_only_command_errors(line: str) -> None:
    for pedantic in (False, True):
        for utf8 in (False, True):
            try:
                parse_command(line, pedantic=pedantic, smtputf8=utf8)
            except CommandError as e:
                assert 500 <= e.reply.code < 600


_WORDS = st.sampled_from(
    ["MAIL", "RCPT", "FROM:", "TO:", "<", ">", "@", '"', "\\", " ", "=", "+", "SIZE", "BODY", "NOTIFY", "ORCPT",
     "a", ".", "[", "]", "IPv6:", "1", ":", ",", "δ", "xn--", "-", "EHLO", "BDAT", "LAST", "AUTH", ";"]
)  # fmt: skip


@given(st.lists(_WORDS, max_size=25))
def test_parse_command_grammar_fuzz(words: list[str]) -> None:
    line = "".join(words)
    try:
        parse_command(line)
    except CommandError as e:
        assert e.reply.code in (500, 501, 553, 555)


def test_pedantic_path_limits() -> None:
    long_lp = "a" * 65 + "@example.org"
    assert isinstance(parse_command(f"MAIL FROM:<{long_lp}>"), cmd.Mail)
    with pytest.raises(CommandError) as e:
        parse_command(f"MAIL FROM:<{long_lp}>", pedantic=True)
    assert e.value.reply.full_enhanced == "5.1.7"
    long_path = "a" * 64 + "@" + ".".join(["b" * 60] * 3) + ".example"
    with pytest.raises(CommandError) as e:
        parse_command(f"RCPT TO:<{long_path}>", pedantic=True)
    assert e.value.reply.full_enhanced == "5.1.3"


def test_every_known_verb_is_parsed() -> None:
    for verb in cmd.VERBS:
        try:
            parse_command(verb)
        except UnknownCommandError:
            pytest.fail(f"{verb} not recognised")
        except CommandError:
            pass
