"""SMTP wire formats, pure: addresses and (later) reply codes and the command grammar. RFC 5321, RFC 6531."""
