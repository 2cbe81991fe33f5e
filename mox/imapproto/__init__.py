"""Pure IMAP4rev2/IMAP4rev1 grammar for the server side (RFC 9051, RFC 3501).

No I/O here: the IMAP server (``mox.imapserver``) feeds bytes in and writes
the bytes it gets back, as h11 does for HTTP.

- :mod:`.reader`: :class:`~.reader.CommandReader` frames commands (lines,
  literals, LITERAL+/LITERAL- of RFC 7888, size limits) and parses them into
  events: ``CommandReceived``, ``NeedContinuation`` (send ``+``),
  ``RawLine`` (after ``expect_line()``: IDLE's DONE, SASL responses) and
  ``ParseFailed`` (reply BAD; ``fatal`` means send BYE and close).
- :mod:`.parse`: one dataclass per command (``Select``, ``Fetch``, ``Search``...)
  and ``parse_command`` for a whole command; ``ParseError``.
- :mod:`.numset`: sequence sets evaluated without expanding ``1:*``.
- :mod:`.utf7`: modified UTF-7 mailbox names (RFC 3501 section 5.1.3).
- :mod:`.write`: response bytes (quoting and literals, ENVELOPE,
  BODYSTRUCTURE, a chunked FETCH builder, LIST, STATUS, SEARCH, ESEARCH,
  SORT, THREAD, tagged replies with response codes).

Typical loop in a server::

    reader = CommandReader(literal_limit=appendlimit)
    reader.receive_data(data)
    while (ev := reader.next_event()) is not None:
        match ev:
            case NeedContinuation(): send(write.continuation("ready"))
            case ParseFailed(tag=t, text=x, code=c, fatal=f): ...
            case CommandReceived(command=cmd): ...
"""
