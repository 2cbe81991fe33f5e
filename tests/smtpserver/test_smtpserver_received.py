"""The Received trace header."""

from __future__ import annotations

from mox.smtpserver.received import ReceivedInfo, received_header, with_protocol


def test_received_header_fields_and_folding() -> None:
    h = received_header(
        ReceivedInfo(
            ehlo="client.example.org",
            remote_ip="198.51.100.5",
            remote_hostname="client.example.org",
            local_hostname="mail.example.com",
            tls_version="TLS1.3",
            tls_cipher="TLS_AES_128_GCM_SHA256",
            connection_id="18c3e1a2",
            recipient="jan@example.com",
            timestamp=0,
        )
    )
    text = h.decode()
    flat = " ".join(text.split())
    assert flat.startswith("Received: from client.example.org (client.example.org [198.51.100.5])")
    assert "by mail.example.com" in flat and "(TLS1.3 TLS_AES_128_GCM_SHA256)" in flat
    assert "with ESMTPS id 18c3e1a2 for <jan@example.com>;" in flat
    assert text.endswith("Thu, 01 Jan 1970 00:00:00 -0000\r\n")
    assert all(len(line) <= 78 for line in text.split("\r\n"))
    assert all(line.startswith("\t") for line in text.split("\r\n")[1:-1])


def test_protocol_types() -> None:
    assert with_protocol(ReceivedInfo("a", "1.2.3.4")) == "ESMTP"
    assert with_protocol(ReceivedInfo("a", "1.2.3.4", tls_version="TLS1.2", authenticated=True)) == "ESMTPSA"
    assert with_protocol(ReceivedInfo("a", "1.2.3.4", smtputf8=True, tls_version="TLS1.3")) == "UTF8SMTPS"
    h = received_header(ReceivedInfo("", "2001:db8::1", local_hostname="mx")).decode()
    assert "from [2001:db8::1] ([IPv6:2001:db8::1])" in h
