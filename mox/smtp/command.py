"""SMTP command lines parsed into values, pure. RFC 5321 section 4.1 with its extensions.

Grammar: RFC 5321 section 4.1.1 (commands) and 4.1.2 (paths, parameters).
Parameters: SIZE (RFC 1870 section 3), BODY (RFC 6152 section 2, RFC 3030
section 3 for BINARYMIME), SMTPUTF8 (RFC 6531 section 3.4), AUTH (RFC 4954
section 5), RET/ENVID/NOTIFY/ORCPT (RFC 3461 section 4), REQUIRETLS (RFC 8689
section 4.1), HOLDFOR/HOLDUNTIL (RFC 4865 section 4), BDAT (RFC 3030 section
2), xtext (RFC 3461 section 4).

Parsing only checks syntax; whether an extension is offered on this
connection, and the order of commands, are for :mod:`mox.smtp.server`.
Every failure raises :class:`CommandError` carrying the reply to send.

Lax mode (the default) accepts violations seen from real clients, as upstream
does: a space after ``FROM:``/``TO:`` (Outlook), trailing white space,
lower-case hex in xtext, and for EHLO/HELO a trailing dot, underscores, an
IP address without brackets and extra text after the name. Pedantic mode
refuses them.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import re
from dataclasses import dataclass, field

from mox.dns.domain import Domain, DomainError, parse_domain
from mox.smtp import codes as c
from mox.smtp.codes import ReplyError
from mox.smtp.path import IPAddress, Path, PathError, parse_address_literal, parse_path_inner, scan_path

# RFC 5321 section 4.5.3.1.4: 512 octets including CRLF for a command line;
# extensions add to it (RFC 1870 section 3: +26, RFC 4954 section 4: +500 for
# AUTH, RFC 6531 section 3.4: +10, RFC 3461 section 4: ...). Upstream reads
# lines of up to 2048 octets and closes the connection beyond that. We do the
# same, and in pedantic mode hold commands without extension parameters to 512.
MAX_COMMAND_LINE = 512
MAX_LINE_BUFFER = 2048
# RFC 5321 section 4.5.3.1.6: a text line in DATA is at most 1000 octets including CRLF.
MAX_TEXT_LINE = 1000
# RFC 5321 section 4.5.3.1.1 and 4.5.3.1.3; enforced in pedantic mode only, as upstream.
MAX_LOCALPART = 64
MAX_PATH = 256
# RFC 3461 section 4.4: ENVID at most 100 characters.
MAX_ENVID = 100
# RFC 3461 section 4.2: ORCPT at most 500 characters.
MAX_ORCPT = 500
# RFC 4865 section 4: hold-for is 1*9DIGIT.
MAX_HOLDFOR_DIGITS = 9
# RFC 1870 section 3: size-value 1*20DIGIT.
MAX_SIZE_DIGITS = 20
# RFC 3030 section 2 gives no limit for chunk-size; 18 digits stay in 63 bits.
MAX_BDAT_DIGITS = 18
# RFC 4954 section 4: mechanism names are 1*20 characters (RFC 4422 section 3.1).
MAX_MECHANISM = 20


class CommandError(ReplyError):
    """A command line cannot be parsed; ``reply`` is what to send (501 5.5.2 and friends)."""


class UnknownCommandError(CommandError):
    """The verb is not an SMTP command we know (500 5.5.1, RFC 5321 section 4.2.4)."""


def _syntax(msg: str) -> CommandError:
    return CommandError(c.C501_BAD_PARAM_SYNTAX, c.SE_PROTO5_SYNTAX_2, f"bad syntax: {msg}")


def _badparam(msg: str) -> CommandError:
    return CommandError(c.C501_BAD_PARAM_SYNTAX, c.SE_PROTO5_BAD_PARAMS_4, msg)


@dataclass(frozen=True, slots=True)
class Hello:
    """HELO or EHLO (RFC 5321 section 4.1.1.1). ``domain`` or ``ip`` is set, or neither when ignored."""

    ehlo: bool
    domain: Domain | None
    ip: IPAddress | None
    raw: str


@dataclass(frozen=True, slots=True)
class MailParams:
    """MAIL FROM parameters; ``given`` lists the upper-cased keywords as they appeared."""

    size: int | None = None
    body: str | None = None  # "7BIT", "8BITMIME" or "BINARYMIME"
    smtputf8: bool = False
    auth: str | None = None  # decoded xtext, or "<>"
    ret: str | None = None  # "FULL" or "HDRS"
    envid: str | None = None  # decoded xtext
    requiretls: bool = False
    hold_for: int | None = None  # seconds
    hold_until: datetime.datetime | None = None  # aware
    given: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Mail:
    """MAIL FROM:<reverse-path> (RFC 5321 section 4.1.1.2); ``path`` is None for the null path ``<>``."""

    path: Path | None
    params: MailParams


@dataclass(frozen=True, slots=True)
class RcptParams:
    """RCPT TO parameters (RFC 3461 section 4.1, 4.2)."""

    notify: tuple[str, ...] | None = None  # ("NEVER",) or a subset of SUCCESS, FAILURE, DELAY
    orcpt_type: str | None = None  # addr-type, e.g. "rfc822" or "utf-8"
    orcpt: str | None = None  # decoded address
    given: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rcpt:
    """RCPT TO:<forward-path> (RFC 5321 section 4.1.1.3), including ``<postmaster>``."""

    path: Path
    params: RcptParams


@dataclass(frozen=True, slots=True)
class Data:
    """DATA (RFC 5321 section 4.1.1.4)."""


@dataclass(frozen=True, slots=True)
class Bdat:
    """BDAT chunk-size [LAST] (RFC 3030 section 2)."""

    size: int
    last: bool


@dataclass(frozen=True, slots=True)
class Rset:
    """RSET (RFC 5321 section 4.1.1.5)."""


@dataclass(frozen=True, slots=True)
class Noop:
    """NOOP [string] (RFC 5321 section 4.1.1.9)."""


@dataclass(frozen=True, slots=True)
class Quit:
    """QUIT (RFC 5321 section 4.1.1.10)."""


@dataclass(frozen=True, slots=True)
class Vrfy:
    """VRFY string [SMTPUTF8] (RFC 5321 section 4.1.1.6, RFC 6531 section 3.7.4.2)."""

    arg: str


@dataclass(frozen=True, slots=True)
class Expn:
    """EXPN string [SMTPUTF8] (RFC 5321 section 4.1.1.7)."""

    arg: str


@dataclass(frozen=True, slots=True)
class Help:
    """HELP [string] (RFC 5321 section 4.1.1.8)."""

    arg: str = ""


@dataclass(frozen=True, slots=True)
class StartTLS:
    """STARTTLS (RFC 3207 section 4)."""


@dataclass(frozen=True, slots=True)
class Auth:
    """AUTH mechanism [initial-response] (RFC 4954 section 4); ``initial`` decoded, b"" for "="."""

    mechanism: str
    initial: bytes | None = field(default=None)


Command = Hello | Mail | Rcpt | Data | Bdat | Rset | Noop | Quit | Vrfy | Expn | Help | StartTLS | Auth

# Every command verb parse_command knows.
VERBS = frozenset(
    {
        "HELO",
        "EHLO",
        "MAIL",
        "RCPT",
        "DATA",
        "BDAT",
        "RSET",
        "NOOP",
        "QUIT",
        "VRFY",
        "EXPN",
        "HELP",
        "STARTTLS",
        "AUTH",
    }
)
# Commands whose lines carry extension parameters may exceed 512 octets.
_LONG_VERBS = frozenset({"MAIL", "RCPT", "AUTH"})


def xtext_decode(s: str, lax: bool = True) -> str:
    """Decode xtext (RFC 3461 section 4): ``+XX`` hex escapes, other characters "!" to "~" except "+" and "=".

    Args:
        lax: accept lower-case hex digits.

    Raises:
        CommandError: invalid xtext (501 5.5.4).
    """
    out = bytearray()
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "+":
            h = s[i + 1 : i + 3]
            if len(h) != 2 or not all(x in "0123456789ABCDEF" or (lax and x in "abcdef") for x in h):
                raise _badparam(f"invalid xtext hex escape in {s!r}")
            out.append(int(h, 16))
            i += 3
            continue
        if not ("!" <= ch <= "~") or ch == "=":
            raise _badparam(f"invalid character {ch!r} in xtext {s!r}")
        out.append(ord(ch))
        i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise _badparam(f"xtext {s!r} does not decode to UTF-8") from None


def xtext_encode(s: str) -> str:
    """Encode as xtext (RFC 3461 section 4); non-ASCII characters become escaped UTF-8 octets."""
    out = []
    for b in s.encode("utf-8"):
        if 33 <= b <= 126 and b not in (ord("+"), ord("=")):
            out.append(chr(b))
        else:
            out.append(f"+{b:02X}")
    return "".join(out)


_UTF8_ADDR_ESCAPE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")


def _decode_orcpt(value: str, lax: bool) -> tuple[str, str]:
    typ, sep, rest = value.partition(";")
    if not sep or not typ or not all(ch.isascii() and (ch.isalnum() or ch == "-") for ch in typ):
        raise _badparam(f"ORCPT {value!r}: expected addr-type;xtext")
    addr = xtext_decode(rest, lax)
    if typ.lower() == "utf-8":
        # RFC 6533 section 3: utf-8-addr-xtext escapes non-ASCII as \x{HEX}.
        try:
            addr = _UTF8_ADDR_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), addr)
        except (ValueError, OverflowError):
            raise _badparam(f"ORCPT {value!r}: invalid \\x{{}} escape") from None
    return typ, addr


def _is_keyword(k: str) -> bool:
    # RFC 5321 section 4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
    return k != "" and k[0] != "-" and all(ch.isascii() and (ch.isalnum() or ch == "-") for ch in k)


def _is_value(v: str) -> bool:
    # RFC 5321 section 4.1.2 esmtp-value: %d33-60 / %d62-126, plus UTF-8 per RFC 6531 section 3.3.
    return v != "" and all(
        ("!" <= ch <= "~" and ch != "=") or (not ch.isascii() and ch.isprintable()) for ch in v
    )


def _split_params(s: str, pedantic: bool) -> list[tuple[str, str | None]]:
    """Split " KEY=VALUE KEY" (leading space included) into (KEY upper-cased, value or None)."""
    if s.strip(" \t") == "":
        if s and pedantic:
            raise _syntax("trailing white space")
        return []
    if not s.startswith(" "):
        raise _syntax(f"expected space before parameters, got {s!r}")
    words = s[1:].split(" ")
    if not pedantic:
        while words and words[-1] in ("", "\t"):
            words.pop()
    out: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for w in words:
        key, eq, value = w.partition("=")
        if not _is_keyword(key):
            raise _syntax(f"invalid parameter {w!r}")
        ukey = key.upper()
        if ukey in seen:
            raise _badparam(f"duplicate parameter {key!r}")
        seen.add(ukey)
        if eq:
            if not _is_value(value):
                raise _badparam(f"invalid value for parameter {key!r}")
            out.append((ukey, value))
        else:
            out.append((ukey, None))
    return out


def _need_value(key: str, value: str | None) -> str:
    if value is None:
        raise _badparam(f"parameter {key} needs a value")
    return value


def _no_value(key: str, value: str | None) -> None:
    if value is not None:
        raise _badparam(f"parameter {key} takes no value")


def _number(key: str, value: str | None, maxdigits: int) -> int:
    v = _need_value(key, value)
    if not v.isascii() or not v.isdigit() or len(v) > maxdigits:
        raise _badparam(f"parameter {key}: expected a number of at most {maxdigits} digits")
    return int(v)


def _unrecognized(key: str) -> CommandError:
    # RFC 5321 section 4.1.1.11: 555 for unrecognized MAIL/RCPT parameters; upstream's enhanced code.
    return CommandError(
        c.C555_UNRECOGNIZED_ADDR_PARAMS, c.SE_SYS3_NOT_SUPPORTED_3, f"unrecognized parameter {key!r}"
    )


def parse_mail_params(s: str, pedantic: bool) -> MailParams:
    """Parse the parameters after the reverse-path.

    Raises:
        CommandError: syntax error, duplicate, bad value or unknown parameter.
    """
    kw: dict[str, object] = {}
    given = []
    for key, value in _split_params(s, pedantic):
        given.append(key)
        if key == "SIZE":
            kw["size"] = _number(key, value, MAX_SIZE_DIGITS)
        elif key == "BODY":
            v = _need_value(key, value).upper()
            if v not in ("7BIT", "8BITMIME", "BINARYMIME"):
                raise CommandError(
                    c.C555_UNRECOGNIZED_ADDR_PARAMS,
                    c.SE_PROTO5_BAD_PARAMS_4,
                    f"unrecognized BODY value {value!r}",
                )
            kw["body"] = v
        elif key == "SMTPUTF8":
            _no_value(key, value)
            kw["smtputf8"] = True
        elif key == "AUTH":
            v = _need_value(key, value)
            kw["auth"] = "<>" if v == "<>" else xtext_decode(v, not pedantic)
        elif key == "RET":
            v = _need_value(key, value).upper()
            if v not in ("FULL", "HDRS"):
                raise _badparam(f"RET must be FULL or HDRS, not {value!r}")
            kw["ret"] = v
        elif key == "ENVID":
            v = _need_value(key, value)
            if len(v) > MAX_ENVID:
                raise _badparam(f"ENVID longer than {MAX_ENVID} characters")
            kw["envid"] = xtext_decode(v, not pedantic)
        elif key == "REQUIRETLS":
            _no_value(key, value)
            kw["requiretls"] = True
        elif key in ("HOLDFOR", "HOLDUNTIL"):
            if "hold_for" in kw or "hold_until" in kw:
                # RFC 4865 section 4: not both.
                raise _badparam("cannot use both HOLDFOR and HOLDUNTIL")
            if key == "HOLDFOR":
                kw["hold_for"] = _number(key, value, MAX_HOLDFOR_DIGITS)
            else:
                kw["hold_until"] = _parse_datetime(_need_value(key, value))
        else:
            raise _unrecognized(key)
    return MailParams(given=tuple(given), **kw)  # type: ignore[arg-type]


def _parse_datetime(v: str) -> datetime.datetime:
    # RFC 4865 section 4 uses RFC 3339 date-time: full-date "T" full-time, with an offset.
    if not re.fullmatch(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", v):
        raise _badparam(f"HOLDUNTIL {v!r}: expected an RFC 3339 date-time")
    try:
        return datetime.datetime.fromisoformat(v.upper())
    except ValueError:
        raise _badparam(f"HOLDUNTIL {v!r}: invalid date-time") from None


def parse_rcpt_params(s: str, pedantic: bool) -> RcptParams:
    """Parse the parameters after the forward-path.

    Raises:
        CommandError: syntax error, duplicate, bad value or unknown parameter.
    """
    notify: tuple[str, ...] | None = None
    otype: str | None = None
    orcpt: str | None = None
    given = []
    for key, value in _split_params(s, pedantic):
        given.append(key)
        if key == "NOTIFY":
            parts = tuple(p.upper() for p in _need_value(key, value).split(","))
            if parts == ("NEVER",):
                notify = parts
            elif (
                "NEVER" in parts
                or not parts
                or not set(parts) <= {"SUCCESS", "FAILURE", "DELAY"}
                or len(set(parts)) != len(parts)
            ):
                raise _badparam(f"NOTIFY {value!r}: expected NEVER or a list of SUCCESS, FAILURE, DELAY")
            else:
                notify = parts
        elif key == "ORCPT":
            v = _need_value(key, value)
            if len(v) > MAX_ORCPT:
                raise _badparam(f"ORCPT longer than {MAX_ORCPT} characters")
            otype, orcpt = _decode_orcpt(v, not pedantic)
        else:
            raise _unrecognized(key)
    return RcptParams(notify, otype, orcpt, tuple(given))


def _path_error(e: PathError, rcpt: bool) -> CommandError:
    if e.non_ascii:
        # RFC 6531 section 3.7.4.1: 553 5.6.7 for non-ASCII addresses without SMTPUTF8.
        return CommandError(
            c.C553_BAD_MAILBOX,
            c.SE_MSG6_NON_ASCII_ADDR_NOT_PERMITTED_7,
            "non-ASCII address not permitted without SMTPUTF8",
        )
    ecode = c.SE_ADDR1_MAILBOX_SYNTAX_3 if rcpt else c.SE_ADDR1_SENDER_SYNTAX_7
    return CommandError(c.C501_BAD_PARAM_SYNTAX, ecode, f"bad syntax: {e}")


def _check_path_limits(inner: str, path: Path, rcpt: bool) -> None:
    ecode = c.SE_ADDR1_MAILBOX_SYNTAX_3 if rcpt else c.SE_ADDR1_SENDER_SYNTAX_7
    if len(path.localpart.encode("utf-8")) > MAX_LOCALPART:
        raise CommandError(c.C501_BAD_PARAM_SYNTAX, ecode, f"local part longer than {MAX_LOCALPART} octets")
    if len(inner.encode("utf-8")) + 2 > MAX_PATH:
        raise CommandError(c.C501_BAD_PARAM_SYNTAX, ecode, f"path longer than {MAX_PATH} octets")


def _parse_mail(rest: str, pedantic: bool) -> Mail:
    if rest[:6].upper() != " FROM:":
        raise _syntax("expected MAIL FROM:<path>")
    rest = rest[6:]
    if rest.startswith(" ") and not pedantic:
        # RFC 5321 section 4.1.1.2 has no space after the colon; Outlook sends one.
        rest = rest.lstrip(" ")
    try:
        inner, after = scan_path(rest)
    except PathError as e:
        raise _path_error(e, False) from None
    params = parse_mail_params(after, pedantic)
    if inner == "":
        return Mail(None, params)
    try:
        path = parse_path_inner(inner, params.smtputf8)
    except PathError as e:
        raise _path_error(e, False) from None
    if pedantic:
        _check_path_limits(inner, path, False)
    return Mail(path, params)


def _parse_rcpt(rest: str, pedantic: bool, smtputf8: bool) -> Rcpt:
    if rest[:4].upper() != " TO:":
        raise _syntax("expected RCPT TO:<path>")
    rest = rest[4:]
    if rest.startswith(" ") and not pedantic:
        rest = rest.lstrip(" ")
    try:
        inner, after = scan_path(rest)
    except PathError as e:
        raise _path_error(e, True) from None
    params = parse_rcpt_params(after, pedantic)
    if inner.upper() == "POSTMASTER":
        # RFC 5321 section 4.1.1.3: "<Postmaster>" without domain, case-insensitive.
        return Rcpt(Path("postmaster"), params)
    if inner == "":
        raise CommandError(
            c.C501_BAD_PARAM_SYNTAX, c.SE_ADDR1_MAILBOX_SYNTAX_3, "bad syntax: empty forward path"
        )
    try:
        path = parse_path_inner(inner, smtputf8)
    except PathError as e:
        raise _path_error(e, True) from None
    if pedantic:
        _check_path_limits(inner, path, True)
    return Rcpt(path, params)


def _parse_hello(rest: str, ehlo: bool, pedantic: bool) -> Hello:
    if not rest.startswith(" ") or rest.strip(" \t") == "":
        raise _syntax("missing domain after HELO/EHLO")
    arg = rest[1:]
    if not pedantic:
        arg = arg.strip(" \t")
        # Extra text after the name: RFC 5321 section 4.1.4 mentions it for address literals; allow generally.
        arg = arg.split(" ", 1)[0].split("\t", 1)[0]
    if arg.startswith("["):
        if not ehlo and pedantic:
            raise _syntax("HELO requires a domain, not an address literal")
        if not arg.endswith("]"):
            raise _syntax(f"unterminated address literal {arg!r}")
        try:
            return Hello(ehlo, None, parse_address_literal(arg[1:-1]), rest[1:])
        except PathError as e:
            raise _syntax(str(e)) from None
    if not pedantic:
        try:
            return Hello(ehlo, None, ipaddress.ip_address(arg), rest[1:])
        except ValueError:
            pass
        if arg.endswith(".") and len(arg) > 1:
            arg = arg[:-1]
    try:
        return Hello(ehlo, parse_domain(arg, lax=not pedantic), None, rest[1:])
    except DomainError as e:
        raise _syntax(str(e)) from None


def _no_args(verb: str, rest: str, pedantic: bool) -> None:
    # RFC 5321 section 4.1.1: these take no arguments; upstream allows trailing white space outside pedantic mode.
    if rest == "" or (not pedantic and rest.strip(" \t") == ""):
        return
    raise _syntax(f"{verb} takes no arguments")


def _string_arg(verb: str, rest: str, pedantic: bool) -> str:
    arg = rest[1:] if rest.startswith(" ") else ""
    if not pedantic:
        arg = arg.strip(" \t")
    if arg == "":
        raise _syntax(f"{verb} needs an argument")
    return arg


def parse_bdat(rest: str, pedantic: bool) -> Bdat:
    """Parse the arguments of BDAT (RFC 3030 section 2: chunk-size [SP end-marker])."""
    words = rest.split(" ")
    if words[0] != "":
        raise _syntax("expected space after BDAT")
    words = words[1:]
    if not pedantic:
        words = [w for w in words if w]
    if len(words) not in (1, 2):
        raise _syntax("expected BDAT chunk-size [LAST]")
    n = words[0]
    if not n.isascii() or not n.isdigit() or len(n) > MAX_BDAT_DIGITS:
        raise _syntax(f"BDAT chunk-size must be a number of at most {MAX_BDAT_DIGITS} digits")
    last = False
    if len(words) == 2:
        if words[1].upper() != "LAST":
            raise _syntax("expected LAST after BDAT chunk-size")
        last = True
    return Bdat(int(n), last)


def decode_base64(s: str) -> bytes:
    """Decode standard base64 strictly (RFC 4954 section 4), "=" meaning empty.

    Raises:
        CommandError: invalid base64 (501 5.5.2).
    """
    if s == "=":
        return b""
    try:
        return base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise _syntax("invalid base64") from None


def _parse_auth(rest: str, pedantic: bool) -> Auth:
    words = rest.split(" ")
    if words[0] != "":
        raise _syntax("expected space after AUTH")
    words = words[1:]
    if not pedantic:
        words = [w for w in words if w]
    if len(words) not in (1, 2):
        raise _syntax("expected AUTH mechanism [initial-response]")
    mech = words[0].upper()
    if not (1 <= len(mech) <= MAX_MECHANISM) or not all(
        ch.isascii() and (ch.isalnum() or ch in "-_") for ch in mech
    ):
        raise _syntax(f"invalid mechanism name {words[0]!r}")
    initial = decode_base64(words[1]) if len(words) == 2 else None
    return Auth(mech, initial)


def command_verb(line: str) -> str:
    """The upper-cased first word of a command line."""
    return line.split(" ", 1)[0].upper()


def parse_command(line: str, *, pedantic: bool = False, smtputf8: bool = False) -> Command:
    """Parse one command line, without its CRLF.

    Args:
        line: the command line, decoded as UTF-8.
        pedantic: refuse common violations instead of accepting them.
        smtputf8: the transaction's MAIL FROM had SMTPUTF8, so RCPT may hold UTF-8 addresses.

    Returns:
        One of the command values (:data:`Command`).

    Raises:
        UnknownCommandError: not an SMTP command.
        CommandError: the arguments do not follow the syntax; ``reply`` says what to send.
    """
    verb, sp, rest = line.partition(" ")
    rest = sp + rest
    verb = verb.upper()
    if pedantic and len(line.encode("utf-8")) + 2 > MAX_COMMAND_LINE and verb not in _LONG_VERBS:
        raise CommandError(
            c.C500_BAD_SYNTAX, c.SE_PROTO5_SYNTAX_2, f"line too long, max {MAX_COMMAND_LINE} octets"
        )
    if verb in ("EHLO", "HELO"):
        return _parse_hello(rest, verb == "EHLO", pedantic)
    if verb == "MAIL":
        return _parse_mail(rest, pedantic)
    if verb == "RCPT":
        return _parse_rcpt(rest, pedantic, smtputf8)
    if verb == "DATA":
        _no_args(verb, rest, pedantic)
        return Data()
    if verb == "BDAT":
        return parse_bdat(rest, pedantic)
    if verb == "RSET":
        _no_args(verb, rest, pedantic)
        return Rset()
    if verb == "NOOP":
        # RFC 5321 section 4.1.1.9: an optional string argument, ignored.
        return Noop()
    if verb == "QUIT":
        _no_args(verb, rest, pedantic)
        return Quit()
    if verb == "VRFY":
        return Vrfy(_string_arg(verb, rest, pedantic))
    if verb == "EXPN":
        return Expn(_string_arg(verb, rest, pedantic))
    if verb == "HELP":
        return Help(rest.strip(" \t"))
    if verb == "STARTTLS":
        _no_args(verb, rest, pedantic)
        return StartTLS()
    if verb == "AUTH":
        return _parse_auth(rest, pedantic)
    # RFC 5321 section 4.2.4: 500 for an unrecognized command (not 502).
    raise UnknownCommandError(c.C500_BAD_SYNTAX, c.SE_PROTO5_BAD_CMD_OR_SEQ_1, "unknown command")
