"""Pure IMAP4rev2/IMAP4rev1 grammar for the server side (RFC 9051, RFC 3501).

- :mod:`.reader`: sans-IO command framing (lines, literals, LITERAL+/-) and events.
- :mod:`.parse`: commands as typed dataclasses.
- :mod:`.numset`: sequence sets evaluated without expansion.
- :mod:`.utf7`: modified UTF-7 mailbox names (RFC 3501 section 5.1.3).
- :mod:`.write`: response bytes (quoting, literals, FETCH, LIST, STATUS, ESEARCH).
"""
