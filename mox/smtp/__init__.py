"""SMTP wire formats and the server conversation, pure (no I/O). RFC 5321, RFC 6531.

- :mod:`mox.smtp.address`: addresses and local parts.
- :mod:`mox.smtp.path`: envelope paths (reverse-path, forward-path).
- :mod:`mox.smtp.codes`: reply codes, enhanced status codes (RFC 3463), replies on the wire.
- :mod:`mox.smtp.command`: command lines parsed into values, with extension parameters.
- :mod:`mox.smtp.data`: DATA dot-unstuffing and end detection, BDAT chunk counting.
- :mod:`mox.smtp.server`: the server-side state machine (h11 style) that mox.smtpserver drives.
"""
