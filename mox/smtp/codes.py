"""SMTP reply codes and enhanced status codes, and replies as sent on the wire.

Reply codes: RFC 5321 section 4.2 (syntax in 4.2, the list in 4.2.3), with the
codes added by RFC 4954 section 6 (AUTH), RFC 7504 (521/556) and RFC 5248.
Enhanced status codes: RFC 3463 (class.subject.detail, section 3) with the
registry additions of RFC 4954, RFC 5248, RFC 6531 section 3.7.4.1, RFC 7372,
RFC 7505 and RFC 8689. ENHANCEDSTATUSCODES itself is RFC 2034.

Enhanced codes are kept as "subject.detail" strings without the class; the
class is the first digit of the reply code (RFC 3463 section 2: class 2, 4 or
5 matches the reply), so one constant serves 4xx and 5xx replies alike, as
upstream does.
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 5321 section 4.5.3.1.5: a reply line is at most 512 octets including CRLF.
MAX_REPLY_LINE = 512

# Reply codes, RFC 5321 section 4.2.3 unless noted.
C211_SYSTEM_STATUS = 211
C214_HELP = 214
C220_SERVICE_READY = 220
C221_CLOSING = 221
C235_AUTH_SUCCESS = 235  # RFC 4954 section 6
C250_COMPLETED = 250
C251_USER_NOT_LOCAL_WILL_FORWARD = 251
C252_WITHOUT_VRFY = 252
C334_CONTINUE_AUTH = 334  # RFC 4954 section 4
C354_CONTINUE = 354
C421_SERVICE_UNAVAIL = 421
C432_PASSWD_TRANSITION_NEEDED = 432  # RFC 4954 section 6
C450_MAILBOX_UNAVAIL = 450
C451_LOCAL_ERR = 451
C452_STORAGE_FULL = 452  # also "too many recipients", RFC 5321 section 4.5.3.1.10
C454_TEMP_AUTH_FAIL = 454  # RFC 4954 section 6
C455_BAD_PARAMS = 455
C500_BAD_SYNTAX = 500
C501_BAD_PARAM_SYNTAX = 501
C502_CMD_NOT_IMPL = 502
C503_BAD_CMD_SEQ = 503
C504_PARAM_NOT_IMPL = 504
C521_HOST_NO_MAIL = 521  # RFC 7504 section 3
C523_ENCRYPTION_NEEDED = 523  # RFC 5248 section 2.4
C525_ACCOUNT_DISABLED = 525  # RFC 5248 section 2.4
C530_SECURITY_REQUIRED = 530  # RFC 3207 section 4, RFC 4954 section 6
C534_AUTH_MECH_WEAK = 534  # RFC 4954 section 6
C535_AUTH_BAD_CREDS = 535  # RFC 4954 section 6
C538_ENC_REQ_FOR_AUTH = 538  # RFC 4954 section 6
C550_MAILBOX_UNAVAIL = 550
C551_USER_NOT_LOCAL = 551
C552_MAILBOX_FULL = 552
C553_BAD_MAILBOX = 553
C554_TRANSACTION_FAILED = 554
C555_UNRECOGNIZED_ADDR_PARAMS = 555
C556_DOMAIN_NO_MAIL = 556  # RFC 7504 section 3

# Enhanced status codes, "subject.detail" (RFC 3463 sections 3.1-3.8).
SE_OTHER_0_0 = "0.0"

# X.1: addressing status (RFC 3463 section 3.2).
SE_ADDR1_OTHER_0 = "1.0"
SE_ADDR1_UNKNOWN_DEST_MAILBOX_1 = "1.1"
SE_ADDR1_UNKNOWN_SYSTEM_2 = "1.2"
SE_ADDR1_MAILBOX_SYNTAX_3 = "1.3"
SE_ADDR1_MAILBOX_AMBIGUOUS_4 = "1.4"
SE_ADDR1_DEST_VALID_5 = "1.5"
SE_ADDR1_DEST_MAILBOX_MOVED_6 = "1.6"
SE_ADDR1_SENDER_SYNTAX_7 = "1.7"
SE_ADDR1_BAD_SENDER_SYSTEM_ADDRESS_8 = "1.8"
SE_ADDR1_NULL_MX_10 = "1.10"  # RFC 7505 section 4.3

# X.2: mailbox status (section 3.3).
SE_MAILBOX2_OTHER_0 = "2.0"
SE_MAILBOX2_DISABLED_1 = "2.1"
SE_MAILBOX2_FULL_2 = "2.2"
SE_MAILBOX2_MSG_LIMIT_EXCEEDED_3 = "2.3"
SE_MAILBOX2_MAIL_LIST_EXPANSION_4 = "2.4"

# X.3: mail system status (section 3.4).
SE_SYS3_OTHER_0 = "3.0"
SE_SYS3_STORAGE_FULL_1 = "3.1"
SE_SYS3_NOT_ACCEPTING_2 = "3.2"
SE_SYS3_NOT_SUPPORTED_3 = "3.3"
SE_SYS3_MSG_LIMIT_EXCEEDED_4 = "3.4"
SE_SYS3_MISCONFIGURED_5 = "3.5"

# X.4: network and routing status (section 3.5).
SE_NET4_OTHER_0 = "4.0"
SE_NET4_NO_ANSWER_1 = "4.1"
SE_NET4_BAD_CONN_2 = "4.2"
SE_NET4_NAME_3 = "4.3"
SE_NET4_ROUTING_4 = "4.4"
SE_NET4_CONGESTION_5 = "4.5"
SE_NET4_LOOP_6 = "4.6"
SE_NET4_DELIVERY_EXPIRED_7 = "4.7"

# X.5: mail delivery protocol status (section 3.6).
SE_PROTO5_OTHER_0 = "5.0"
SE_PROTO5_BAD_CMD_OR_SEQ_1 = "5.1"
SE_PROTO5_SYNTAX_2 = "5.2"
SE_PROTO5_TOO_MANY_RCPTS_3 = "5.3"
SE_PROTO5_BAD_PARAMS_4 = "5.4"
SE_PROTO5_PROTOCOL_MISMATCH_5 = "5.5"
SE_PROTO5_AUTH_EXCHANGE_TOO_LONG_6 = "5.6"  # RFC 4954 section 6

# X.6: message content or media status (section 3.7).
SE_MSG6_OTHER_0 = "6.0"
SE_MSG6_MEDIA_UNSUPPORTED_1 = "6.1"
SE_MSG6_CONVERSION_PROHIBITED_2 = "6.2"
SE_MSG6_CONVERSION_UNSUPPORTED_3 = "6.3"
SE_MSG6_CONVERSION_WITH_LOSS_4 = "6.4"
SE_MSG6_CONVERSION_FAILED_5 = "6.5"
SE_MSG6_NON_ASCII_ADDR_NOT_PERMITTED_7 = "6.7"  # RFC 6531 section 3.7.4.1
SE_MSG6_UTF8_REPLY_REQUIRED_8 = "6.8"  # RFC 6531 section 3.7.4.1
SE_MSG6_UTF8_CANNOT_TRANSFER_9 = "6.9"  # RFC 6531 section 3.7.4.1

# X.7: security or policy status (section 3.8, and the registry).
SE_POL7_OTHER_0 = "7.0"
SE_POL7_DELIVERY_UNAUTH_1 = "7.1"
SE_POL7_EXPN_PROHIBITED_2 = "7.2"
SE_POL7_CONVERSION_IMPOSSIBLE_3 = "7.3"
SE_POL7_UNSUPPORTED_4 = "7.4"
SE_POL7_CRYPTO_FAILURE_5 = "7.5"
SE_POL7_CRYPTO_UNSUPPORTED_6 = "7.6"
SE_POL7_MSG_INTEGRITY_7 = "7.7"
SE_POL7_AUTH_BAD_CREDS_8 = "7.8"  # RFC 4954 section 6
SE_POL7_AUTH_WEAK_MECH_9 = "7.9"  # RFC 4954 section 6
SE_POL7_ENC_NEEDED_10 = "7.10"  # RFC 5248 section 2.4
SE_POL7_ENC_REQ_FOR_AUTH_11 = "7.11"  # RFC 4954 section 6
SE_POL7_PASSWD_TRANSITION_REQ_12 = "7.12"  # RFC 4954 section 6
SE_POL7_ACCOUNT_DISABLED_13 = "7.13"  # RFC 5248 section 2.4
SE_POL7_TRUST_REQ_14 = "7.14"  # RFC 5248 section 2.4
SE_POL7_NO_DKIM_PASS_20 = "7.20"  # RFC 7372 section 3.1
SE_POL7_NO_DKIM_ACCEPT_21 = "7.21"  # RFC 7372 section 3.1
SE_POL7_NO_DKIM_AUTHOR_MATCH_22 = "7.22"  # RFC 7372 section 3.1
SE_POL7_SPF_RESULT_FAIL_23 = "7.23"  # RFC 7372 section 3.2
SE_POL7_SPF_ERROR_24 = "7.24"  # RFC 7372 section 3.2
SE_POL7_REV_DNS_FAIL_25 = "7.25"  # RFC 7372 section 3.3
SE_POL7_MULTI_AUTH_FAILS_26 = "7.26"  # RFC 7372 section 3.4
SE_POL7_SENDER_HAS_NULL_MX_27 = "7.27"  # RFC 7505 section 4.3
SE_POL7_ARC_FAIL_29 = "7.29"  # RFC 8617 section 5.1
SE_POL7_MISSING_REQ_TLS_30 = "7.30"  # RFC 8689 section 5


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: a code, an optional enhanced code and one or more text lines.

    ``enhanced`` is "subject.detail" (the class is taken from the code) or a
    full "class.subject.detail"; empty for replies that carry none (the 220
    greeting, 334 challenges, the EHLO keyword list, 354).
    """

    code: int
    enhanced: str = ""
    lines: tuple[str, ...] = ("",)

    @classmethod
    def make(cls, code: int, enhanced: str, text: str) -> Reply:
        """A reply whose text may hold newlines, each becoming its own reply line."""
        return cls(code, enhanced, tuple(text.split("\n")))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def full_enhanced(self) -> str:
        """The enhanced code with its class, or empty."""
        if not self.enhanced:
            return ""
        if self.enhanced.count(".") == 2:
            return self.enhanced
        return f"{self.code // 100}.{self.enhanced}"

    def is_error(self) -> bool:
        return self.code >= 400

    def encode(self, enhanced_status_codes: bool = True) -> bytes:
        """The reply on the wire, CRLF-terminated lines, "-" after the code on all but the last.

        RFC 5321 section 4.2.1 (multi-line replies), RFC 2034 section 4 (the
        enhanced code is repeated on every line). Lines longer than a reply
        line may be (section 4.5.3.1.5) are wrapped at a space where possible.
        """
        ecode = self.full_enhanced if enhanced_status_codes else ""
        prefix_len = 4 + (len(ecode) + 1 if ecode else 0)
        room = MAX_REPLY_LINE - 2 - prefix_len
        out: list[str] = []
        for line in self.lines:
            # No CR/LF may leak into a reply line (reply injection).
            line = line.replace("\r", " ").replace("\n", " ")
            while len(line.encode()) > room:
                # Longest prefix that fits in octets, then back to a space if one is near.
                fit = room
                while len(line[:fit].encode()) > room:
                    fit -= 1
                cut = line.rfind(" ", max(1, fit - 100), fit + 1)
                if cut <= 0:
                    cut = fit
                out.append(line[:cut])
                line = line[cut:].lstrip(" ")
            out.append(line)
        parts = []
        for i, line in enumerate(out):
            sep = " " if i == len(out) - 1 else "-"
            if ecode:
                text = f"{ecode} {line}" if line else ecode
            else:
                text = line
            parts.append(f"{self.code}{sep}{text}".rstrip(" ") + "\r\n")
        return "".join(parts).encode("utf-8")


class ReplyError(Exception):
    """A command cannot be executed; ``reply`` says what to send to the client."""

    def __init__(self, code: int, enhanced: str, text: str) -> None:
        super().__init__(f"{code} {enhanced} {text}")
        self.reply = Reply.make(code, enhanced, text)
