"""Submit one message from the client host of the interop network (standard library only).

    python3 /interop/submit.py --host mail.mox1.example --cafile /state/acme-root.pem \\
        --user mjl@mox1.example --password PW --sender mjl@mox1.example --to mjl@mox2.example --subject S

Connects to HOST (resolved through the host's resolver, the dns container) on port 465 with
implicit TLS (submissions, RFC 8314 section 3.3), verifying the certificate against CAFILE only
and the name HOST, authenticates and sends a short message. Prints one line per step; exits 1
with the error otherwise.
"""

from __future__ import annotations

import argparse
import email.utils
import smtplib
import socket
import ssl
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=465)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--sender", required=True)
    ap.add_argument("--to", required=True, action="append")
    ap.add_argument("--subject", required=True)
    ap.add_argument("--body", default="submitted from the client host\n")
    a = ap.parse_args()

    ctx = ssl.create_default_context(cafile=a.cafile)  # only this CA, host name checked
    msg = (
        f"From: <{a.sender}>\r\nTo: {', '.join(f'<{t}>' for t in a.to)}\r\nSubject: {a.subject}\r\n"
        f"Date: {email.utils.formatdate()}\r\nMessage-ID: {email.utils.make_msgid(domain='client.example')}\r\n\r\n"
        + a.body.replace("\n", "\r\n")
    )
    try:
        with smtplib.SMTP_SSL(a.host, a.port, local_hostname=socket.getfqdn(), context=ctx, timeout=30) as s:
            sock = s.sock
            assert isinstance(sock, ssl.SSLSocket)
            print(f"connected to {a.host}:{a.port} from {sock.getsockname()[0]}, {sock.version()}, certificate verified")
            s.login(a.user, a.password)
            print("authenticated")
            refused = s.sendmail(a.sender, a.to, msg.encode())
            if refused:
                print(f"refused: {refused}")
                return 1
            print("sent")
    except (OSError, smtplib.SMTPException) as e:
        print(f"error: {e!r}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
