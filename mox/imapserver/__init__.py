"""The IMAP server (RFC 3501 IMAP4rev1 subset); see :mod:`.server`."""
