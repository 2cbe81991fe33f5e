"""Helpers for the store tests (a plain module: conftest modules of different directories share a name)."""

from __future__ import annotations


def make_message(subject: str = "hello", message_id: str = "", body: str = "hi\r\n", extra: str = "", size: int = 0) -> bytes:
    head = f"From: a@example.org\r\nTo: b@example.com\r\nSubject: {subject}\r\n"
    if message_id:
        head += f"Message-ID: <{message_id}>\r\n"
    head += extra
    data = (head + "\r\n" + body).encode()
    if size > len(data):
        data += b"x" * (size - len(data) - 2) + b"\r\n"
    return data
