"""SORT and THREAD (RFC 5256) over IMAP, UID variants, bad input."""

from __future__ import annotations

from imaphelpers import Client, append


def _msg(subject: str, frm: str, date: str, mid: str, refs: str = "", size_pad: int = 0) -> bytes:
    h = f"From: {frm}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{mid}>\r\n"
    if refs:
        h += f"References: {refs}\r\nIn-Reply-To: {refs.split()[-1]}\r\n"
    return (h + "\r\nbody" + "x" * size_pad + "\r\n").encode()


async def _setup(c: Client) -> list[int]:
    msgs = [
        _msg("hello", "zed@example.org", "Mon, 1 Jan 2024 10:00:00 +0000", "a@x", size_pad=50),
        _msg("other topic", "amy@example.org", "Sun, 31 Dec 2023 10:00:00 +0000", "b@x"),
        _msg("Re: hello", "bob@example.org", "Tue, 2 Jan 2024 10:00:00 +0000", "c@x", refs="<a@x>", size_pad=10),
        _msg("Re: Re: hello", "amy@example.org", "Wed, 3 Jan 2024 10:00:00 +0000", "d@x", refs="<a@x> <c@x>"),
    ]
    for m in msgs:
        await append(c, m)
    await c.cmd("SELECT INBOX")
    return [len(m) for m in msgs]


async def test_sort(client: Client) -> None:
    sizes = await _setup(client)
    r = await client.cmd("SORT (DATE) UTF-8 ALL")
    assert r[0] == b"* SORT 2 1 3 4\r\n"
    r = await client.cmd("SORT (REVERSE SIZE) US-ASCII ALL")
    by_size = sorted(range(1, 5), key=lambda i: (-sizes[i - 1], i))
    assert r[0] == b"* SORT " + " ".join(map(str, by_size)).encode() + b"\r\n"
    r = await client.cmd("UID SORT (FROM SUBJECT) UTF-8 NOT UID 4")
    assert r[0] == b"* SORT 2 3 1\r\n"
    r = await client.cmd("SORT (SUBJECT ARRIVAL) UTF-8 ALL")
    assert r[0] == b"* SORT 1 3 4 2\r\n"
    r = await client.cmd("SORT (DISPLAYFROM) UTF-8 DELETED")
    assert r[0] == b"* SORT\r\n"
    for bad in ("SORT (BOGUS) UTF-8 ALL", "SORT () UTF-8 ALL", "SORT DATE UTF-8 ALL", "SORT (DATE) UTF-8"):
        r = await client.cmd(bad)
        assert b" BAD " in r[-1], bad
    r = await client.cmd("SORT (DATE) KOI8-R ALL")
    assert b"NO [BADCHARSET" in r[-1]


async def test_thread(client: Client) -> None:
    await _setup(client)
    r = await client.cmd("THREAD REFERENCES UTF-8 ALL")
    assert r[0] == b"* THREAD (2)(1 3 4)\r\n"
    r = await client.cmd("UID THREAD ORDEREDSUBJECT UTF-8 ALL")
    assert r[0] == b"* THREAD (2)(1 (3)(4))\r\n"
    r = await client.cmd("THREAD REFERENCES UTF-8 DELETED")
    assert r[0] == b"* THREAD\r\n"
    r = await client.cmd("THREAD BOGUS UTF-8 ALL")
    assert b" BAD " in r[-1]
    r = await client.cmd("CAPABILITY")
    assert b" THREAD=REFERENCES" in r[0] and b" SORT " in r[0]
