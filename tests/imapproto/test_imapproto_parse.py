"""Command parsing: valid and invalid forms of every command."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mox.imapproto import parse as p
from mox.imapproto.numset import NumRange, NumSet


def cmd(line: bytes, utf8: bool = False) -> p.Command:
    return p.parse_command(line + b"\r\n", utf8=utf8)


def one(a: int | None, b: int | None = None) -> NumSet:
    return NumSet((NumRange(a, a if b is None and a is not None else b),))


VALID: list[tuple[bytes, p.Command]] = [
    (b"a CAPABILITY", p.Simple("a", "CAPABILITY")),
    (b"a noop", p.Simple("a", "NOOP")),
    (b"a LOGOUT", p.Simple("a", "LOGOUT")),
    (b"a STARTTLS", p.Simple("a", "STARTTLS")),
    (b"a CHECK", p.Simple("a", "CHECK")),
    (b"a CLOSE", p.Simple("a", "CLOSE")),
    (b"a UNSELECT", p.Simple("a", "UNSELECT")),
    (b"a IDLE", p.Simple("a", "IDLE")),
    (b"a NAMESPACE", p.Simple("a", "NAMESPACE")),
    (b"a EXPUNGE", p.Expunge("a", "EXPUNGE")),
    (b"a UID EXPUNGE 1:3", p.Expunge("a", "UID EXPUNGE", one(1, 3))),
    (b"a AUTHENTICATE PLAIN", p.Authenticate("a", "AUTHENTICATE", "PLAIN")),
    (b"a AUTHENTICATE plain AGEAYg==", p.Authenticate("a", "AUTHENTICATE", "PLAIN", b"\0a\0b")),
    (b"a AUTHENTICATE EXTERNAL =", p.Authenticate("a", "AUTHENTICATE", "EXTERNAL", b"")),
    (b'a LOGIN bob "p w\\"x"', p.Login("a", "LOGIN", "bob", 'p w"x')),
    (b"a LOGIN {3}\r\nbob {2+}\r\npw", p.Login("a", "LOGIN", "bob", "pw")),
    (b"a ENABLE CONDSTORE utf8=accept", p.Enable("a", "ENABLE", ["CONDSTORE", "UTF8=ACCEPT"])),
    (b"a COMPRESS DEFLATE", p.Compress("a", "COMPRESS", "DEFLATE")),
    (b"a SELECT inbox", p.Select("a", "SELECT", "INBOX")),
    (b"a EXAMINE Entw&APw-rfe (CONDSTORE)", p.Select("a", "EXAMINE", "Entwürfe", True, True)),
    (b"a SELECT x (QRESYNC (7 100))", p.Select("a", "SELECT", "x", qresync=p.Qresync(7, 100))),
    (
        b"a SELECT x (QRESYNC (7 100 (1:2 5:6)))",
        p.Select("a", "SELECT", "x", qresync=p.Qresync(7, 100, None, (one(1, 2), one(5, 6)))),
    ),
    (b"a CREATE x", p.Create("a", "CREATE", "x")),
    (b"a CREATE ~peter/x", p.Create("a", "CREATE", "~peter/x")),
    (b"a CREATE x (USE (\\Archive \\Sent))", p.Create("a", "CREATE", "x", ["\\Archive", "\\Sent"])),
    (b"a DELETE x", p.Mailbox("a", "DELETE", "x")),
    (b"a RENAME x y", p.Rename("a", "RENAME", "x", "y")),
    (b"a SUBSCRIBE x", p.Mailbox("a", "SUBSCRIBE", "x")),
    (b"a UNSUBSCRIBE x", p.Mailbox("a", "UNSUBSCRIBE", "x")),
    (b'a LIST "" *', p.List("a", "LIST", "", ["*"])),
    (b'a LSUB "" %', p.List("a", "LSUB", "", ["%"])),
    (
        b'a LIST (SPECIAL-USE) "" ("*" %) RETURN (SUBSCRIBED CHILDREN STATUS (UNSEEN SIZE))',
        p.List("a", "LIST", "", ["*", "%"], ["SPECIAL-USE"], ["SUBSCRIBED", "CHILDREN", "STATUS"], ["UNSEEN", "SIZE"], True),
    ),
    (b"a STATUS x (MESSAGES UIDNEXT HIGHESTMODSEQ APPENDLIMIT)",
     p.Status("a", "STATUS", "x", ["MESSAGES", "UIDNEXT", "HIGHESTMODSEQ", "APPENDLIMIT"])),
    (b"a APPEND x {2}\r\nhi", p.Append("a", "APPEND", "x", [p.AppendMessage(data=b"hi")])),
    (
        b"a APPEND x () \"05-Jan-2021 01:02:03 -0130\" ~{1}\r\n\0 UTF8 (~{1+}\r\nz)",
        p.Append("a", "APPEND", "x", [
            p.AppendMessage([], datetime.datetime(2021, 1, 5, 1, 2, 3, tzinfo=datetime.timezone(-datetime.timedelta(hours=1, minutes=30))), b"\0", True),
            p.AppendMessage(data=b"z", binary=True, utf8=True),
        ]),
    ),
    (b"a SEARCH ALL", p.Search("a", "SEARCH", key=p.SearchKey("ALL"))),
    (
        b"a UID SEARCH RETURN (SAVE) CHARSET UTF-8 $ HEADER X-A \"b c\" larger 10 MODSEQ \"/flags/\\\\draft\" all 5",
        p.Search("a", "UID SEARCH", True, "UTF-8", p.SearchKey("AND", [
            p.SearchKey("SEQ", nums=NumSet(search_result=True)),
            p.SearchKey("HEADER", field="X-A", text="b c"),
            p.SearchKey("LARGER", number=10),
            p.SearchKey("MODSEQ", field="/flags/\\draft", text="all", number=5),
        ]), ["SAVE"]),
    ),
    (
        b'a SEARCH NOT (OR KEYWORD $Junk ON "2-Mar-2022") UID *:4',
        p.Search("a", "SEARCH", key=p.SearchKey("AND", [
            p.SearchKey("NOT", [p.SearchKey("AND", [p.SearchKey("OR", [
                p.SearchKey("KEYWORD", text="$Junk"), p.SearchKey("ON", date=datetime.date(2022, 3, 2))])])]),
            p.SearchKey("UID", nums=one(None, 4)),
        ])),
    ),
    (
        b"a FETCH 1 ALL",
        p.Fetch("a", "FETCH", nums=one(1), atts=[p.FetchAtt(n) for n in ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE")]),
    ),
    (b"a FETCH 2 (PREVIEW (LAZY) PREVIEW)", p.Fetch("a", "FETCH", nums=one(2), atts=[p.FetchAtt("PREVIEW", lazy=True), p.FetchAtt("PREVIEW")])),
    (b"a SEARCH YOUNGER 3 SAVEDATESUPPORTED", p.Search("a", "SEARCH", key=p.SearchKey("AND", [p.SearchKey("YOUNGER", number=3), p.SearchKey("SAVEDATESUPPORTED")]))),
    (
        b'a LIST "" INBOX RETURN (METADATA (/private/color /shared/x))',
        p.List("a", "LIST", "", ["INBOX"], [], ["METADATA"], None, True, ["/private/color", "/shared/x"]),
    ),
    (b"a FETCH 2 body", p.Fetch("a", "FETCH", nums=one(2), atts=[p.FetchAtt("BODY")])),
    (
        b"a UID FETCH 1:* (BINARY.PEEK[1.2]<5.10> BINARY.SIZE[1] BODY[] MODSEQ UID) (CHANGEDSINCE 9 VANISHED)",
        p.Fetch("a", "UID FETCH", True, NumSet((NumRange(1, None),)), [
            p.FetchAtt("BINARY", p.Section([1, 2]), True, (5, 10)),
            p.FetchAtt("BINARY.SIZE", p.Section([1])),
            p.FetchAtt("BODY", p.Section()),
            p.FetchAtt("MODSEQ"),
            p.FetchAtt("UID"),
        ], 9, True),
    ),
    (
        b"a FETCH 1 (BODY[3.MIME] BODY[HEADER.FIELDS.NOT (Subject)] BODY[TEXT]<0.1>)",
        p.Fetch("a", "FETCH", nums=one(1), atts=[
            p.FetchAtt("BODY", p.Section([3], "MIME")),
            p.FetchAtt("BODY", p.Section([], "HEADER.FIELDS.NOT", ["SUBJECT"])),
            p.FetchAtt("BODY", p.Section([], "TEXT"), partial=(0, 1)),
        ]),
    ),
    (b"a STORE 1 +FLAGS.SILENT (\\Seen $x)", p.Store("a", "STORE", False, one(1), "+", True, ["\\Seen", "$x"])),
    (b"a UID STORE 1 (UNCHANGEDSINCE 3) FLAGS \\Deleted",
     p.Store("a", "UID STORE", True, one(1), "", False, ["\\Deleted"], 3)),
    (b"a STORE 1 -FLAGS ()", p.Store("a", "STORE", False, one(1), "-", False, [])),
    (b"a COPY 1:2 Trash", p.Copy("a", "COPY", False, one(1, 2), "Trash")),
    (b"a UID MOVE $ Trash", p.Copy("a", "UID MOVE", True, NumSet(search_result=True), "Trash")),
    (b"a ID NIL", p.Id("a", "ID", None)),
    (b'a ID ("name" "x" "version" NIL)', p.Id("a", "ID", [("name", "x"), ("version", None)])),
    (b'a GETQUOTA ""', p.GetQuota("a", "GETQUOTA", "")),
    (b"a GETQUOTAROOT INBOX", p.Mailbox("a", "GETQUOTAROOT", "INBOX")),
    (b'a GETMETADATA (DEPTH 1 MAXSIZE 10) "" (/private/comment)',
     p.GetMetadata("a", "GETMETADATA", "", ["/private/comment"], 10, "1")),
    (b'a SETMETADATA INBOX (/private/comment "x" /shared/y NIL)',
     p.SetMetadata("a", "SETMETADATA", "INBOX", [("/private/comment", b"x"), ("/shared/y", None)])),
    (b"a UID SORT (REVERSE DATE SUBJECT) UTF-8 ALL",
     p.Sort("a", "UID SORT", True, [(True, "DATE"), (False, "SUBJECT")], "UTF-8", p.SearchKey("ALL"))),
    (b"a THREAD REFERENCES US-ASCII SEEN", p.Thread("a", "THREAD", False, "REFERENCES", "US-ASCII", p.SearchKey("SEEN"))),
    (b"a NOTIFY NONE", p.Notify("a", "NOTIFY")),
    (
        b"a NOTIFY SET STATUS (SELECTED (MessageNew (UID) MessageExpunge)) (MAILBOXES (a b) NONE)",
        p.Notify("a", "NOTIFY", True, [
            p.NotifyGroup("SELECTED", [], ["MESSAGENEW", "MESSAGEEXPUNGE"], [p.FetchAtt("UID")]),
            p.NotifyGroup("MAILBOXES", ["a", "b"], None),
        ]),
    ),
    (b"a UID REPLACE 4 x {1+}\r\nm", p.Replace("a", "UID REPLACE", True, 4, "x", p.AppendMessage(data=b"m"))),
    (b"a ESEARCH IN (MAILBOXES (a b)) RETURN (COUNT) ALL",
     p.Esearch("a", "ESEARCH", False, [("MAILBOXES", ["a", "b"])], None, p.SearchKey("ALL"), ["COUNT"])),
]


@pytest.mark.parametrize(("line", "want"), VALID, ids=[v[0][:40].decode("latin-1") for v in VALID])
def test_parse_valid_commands(line: bytes, want: p.Command) -> None:
    assert cmd(line) == want


def test_parse_utf8_mailbox_names() -> None:
    assert cmd(b'a SELECT "Entw\xc3\xbcrfe"', utf8=True) == p.Select("a", "SELECT", "Entwürfe")
    assert cmd(b"a SELECT &APw-", utf8=True) == p.Select("a", "SELECT", "&APw-")


INVALID = [
    b"",
    b"a",
    b"+ NOOP",
    b"a NOOP extra",
    b"a FOO",
    b"a UID NOOP",
    b"a LOGIN bob",
    b'a LOGIN bob "unterminated',
    b'a LOGIN bob "bad\\escape"',
    b"a SELECT \xc3\xbc",
    b"a SELECT &AGE-",
    b"a SELECT x (BOGUS)",
    b"a STATUS x ()",
    b"a STATUS x (MESSAGES BOGUS)",
    b"a APPEND x",
    b"a APPEND x {5}\r\nab",
    b'a APPEND x "1-Jan-2020" {1}\r\nx',
    b"a SEARCH",
    b"a SEARCH FOO",
    b"a SEARCH (ALL",
    b"a SEARCH OR ALL",
    b"a SEARCH SINCE 32-Jan-2020",
    b"a SEARCH 0",
    b"a SEARCH OLDER 0",
    b"a SEARCH LARGER 99999999999999999999999",
    b"a SEARCH RETURN (BOGUS) ALL",
    b'a LIST "" x RETURN (METADATA ())',
    b'a LIST "" x RETURN (METADATA /private/x)',
    b"a FETCH 1 (BODY[1.BOGUS])",
    b"a FETCH 1 BINARY[HEADER]",
    b"a FETCH 1 BODY.PEEK",
    b"a FETCH 1 (FLAGS) (VANISHED)",
    b"a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)",
    b"a FETCH 1:2,",
    b"a STORE 1 FLAG (x)",
    b"a UID EXPUNGE $",
    b"a ENABLE",
    b"a SORT (BOGUS) UTF-8 ALL",
    b"a SEARCH " + b"(" * 500 + b"ALL" + b")" * 500,
    b"a SEARCH " + b"NOT " * 500 + b"ALL",
]


@pytest.mark.parametrize("line", INVALID)
def test_parse_invalid_commands(line: bytes) -> None:
    with pytest.raises(p.ParseError) as ei:
        cmd(line)
    if line.startswith(b"a "):
        assert ei.value.tag == "a"


def test_tag_of() -> None:
    assert p.tag_of(b"a1 NOOP") == "a1"
    assert p.tag_of(b"+x NOOP") is None
    assert p.tag_of(b"noline") is None


_FRAGMENTS = [
    b"a ", b"UID ", b"FETCH ", b"SEARCH ", b"STORE ", b"SELECT ", b"LIST ", b"APPEND ", b"STATUS ", b"NOTIFY SET ",
    b"SORT ", b"GETMETADATA ", b"SETMETADATA ", b"ESEARCH IN (", b"ID (", b"AUTHENTICATE X ", b"REPLACE 1 x ",
    b"1:*", b"$", b"*", b",", b":", b"(", b")", b"[", b"]", b"<", b">", b".", b" ", b'"', b"\\", b"{2}\r\nab",
    b"~{1+}\r\n\0", b"BODY", b"BINARY", b"HEADER.FIELDS", b"NIL", b"RETURN", b"OR", b"NOT", b"MODSEQ", b"QRESYNC",
    b"1-Jan-2020", b'"01-Jan-2020 00:00:00 +0000"', b"&AGE-", b"\xc3\xbc", b"0", b"99999999999999999999999",
]


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS) | st.binary(max_size=5), max_size=25), st.booleans())
def test_arbitrary_commands_only_raise_parse_error(parts: list[bytes], utf8: bool) -> None:
    try:
        p.parse_command(b"".join(parts) + b"\r\n", utf8=utf8)
    except p.ParseError as e:
        assert str(e), f"{type(e).__name__} without a message"  # Bad input gets a clear error.


_ENTRY = st.from_regex(r"/(private|shared)(/[a-z0-9.-]{1,8}){1,3}", fullmatch=True)


@given(st.lists(_ENTRY, min_size=1, max_size=5), st.booleans())
@settings(max_examples=50)
def test_list_return_metadata_entries(entries: list[str], quoted: bool) -> None:
    # RFC 9590: the entry names of RETURN (METADATA (...)) come back as sent, as atoms or quoted.
    names = " ".join(f'"{e}"' if quoted else e for e in entries)
    cmd = p.parse_command(f'a LIST "" * RETURN (CHILDREN METADATA ({names}))\r\n'.encode())
    assert isinstance(cmd, p.List)
    assert cmd.return_options == ["CHILDREN", "METADATA"] and cmd.return_metadata == entries
