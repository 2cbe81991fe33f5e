"""Random client input to the SASL mechanisms: always a defined step, never an exception."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st
from saslhelpers import credentials

from mox.sasl import MECHANISMS, Challenge, Failure, NeedCredentials, Step, Success, new_server

BINDINGS = {"tls-unique": b"binding-data"}


def drive(name: str, inputs: list[bytes | str], *, initial: bytes | str | None, raw: bool) -> list[Step]:
    mech = new_server(name, channel_bindings=BINDINGS, hostname="mail.example.org")
    steps: list[Step] = []
    step = mech.step(initial) if raw and isinstance(initial, bytes) else mech.respond(initial, initial=True)
    steps.append(step)
    for data in inputs:
        if isinstance(step, NeedCredentials):
            step = mech.provide(credentials() if step.username == "tim" else None)
            steps.append(step)
        if not isinstance(step, Challenge):
            break
        step = mech.step(data) if raw and isinstance(data, bytes) else mech.respond(data)
        steps.append(step)
    for s in steps:
        assert isinstance(s, Challenge | NeedCredentials | Success | Failure)
    assert not any(isinstance(s, Success) for s in steps)
    return steps


_text_lines = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()),
    st.sampled_from(["*", "=", "", "==", "dGlt=="]),
)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(MECHANISMS),
    st.one_of(st.none(), st.binary(max_size=80)),
    st.lists(st.binary(max_size=80), max_size=4),
)
def test_random_decoded_data(name: str, initial: bytes | None, inputs: list[bytes | str]) -> None:
    drive(name, inputs, initial=initial, raw=True)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(MECHANISMS),
    st.one_of(st.none(), _text_lines),
    st.lists(st.one_of(_text_lines, st.binary(max_size=40)), max_size=4),
)
def test_random_lines(name: str, initial: str | None, inputs: list[bytes | str]) -> None:
    drive(name, inputs, initial=initial, raw=False)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["SCRAM-SHA-256", "SCRAM-SHA-1-PLUS"]), st.text(max_size=40), st.binary(max_size=60))
def test_scram_like_first_messages(name: str, user: str, tail: bytes) -> None:
    first = b"p=tls-unique,," if name.endswith("PLUS") else b"n,,"
    mech = new_server(name, channel_bindings=BINDINGS)
    step = mech.step(first + b"n=" + user.encode("utf-8", "surrogatepass") + b",r=" + tail)
    assert isinstance(step, NeedCredentials | Failure)
    if isinstance(step, NeedCredentials):
        step = mech.provide(None)
        assert isinstance(step, Challenge)
        final = mech.step(b"c=biws,r=" + tail + b",p=" + base64.b64encode(tail))
        assert isinstance(final, Failure)
