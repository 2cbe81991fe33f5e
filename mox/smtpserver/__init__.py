"""The SMTP server: the asyncio side around the sans-IO protocol core in mox.smtp (RFC 5321)."""
