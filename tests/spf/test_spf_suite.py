"""The openspf.org RFC 7208 test suite (data/rfc7208-tests.yml, see README.md), run against mox.spf.

Each scenario's zone data becomes a MockResolver, as the suite's drivers do:
SPF-type records also serve as TXT records when a name has no TXT entries
("TXT: NONE" stands for no TXT records), and "TIMEOUT" makes lookups of every
type without records at that name time out.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from mox.dns import MX, MockResolver
from mox.dns.resolver import name_text, to_dns_name
from mox.spf import verify

DATA = Path(__file__).parent / "data" / "rfc7208-tests.yml"

# Cases that cannot apply here, with the reason. Keep it small.
SKIP: dict[str, str] = {}

# Cases whose expected explanation is compared without regard to case.
EXPLANATION_ANY_CASE: dict[str, str] = {
    "v-macro-ip6": "the suite wants the %{i} nibbles of CAFE:BABE::1 in upper case, as the"
    " host was written; RFC 7208 section 7.4's example has them in lower case, as we do",
}

_TYPES = ("A", "AAAA", "TXT", "MX", "PTR", "CNAME")


def _ptr_ip(name: str) -> str:
    """The IP address of a reverse name (in-addr.arpa or ip6.arpa)."""
    labels = name.lower().rstrip(".").split(".")
    if labels[-2:] == ["in-addr", "arpa"]:
        return ".".join(reversed(labels[:-2]))
    nibbles = "".join(reversed(labels[:-2]))
    return str(ipaddress.IPv6Address(int(nibbles, 16)))


def resolver_for(zonedata: dict[str, list[Any]]) -> MockResolver:
    r = MockResolver()
    for zone_name, entries in zonedata.items():
        # Names in the tables are in presentation form, as the resolver's
        # queries are ("a b" is "a\\032b").
        name = name_text(to_dns_name(zone_name))
        recs: dict[str, list[Any]] = {t: [] for t in (*_TYPES, "SPF")}
        has_txt = False
        timeout = False
        for entry in entries:
            if entry == "TIMEOUT":
                timeout = True
                continue
            ((typ, value),) = entry.items()
            if typ == "TXT":
                has_txt = True
            if typ in ("TXT", "SPF"):
                if value == "NONE":
                    continue
                value = "".join(value) if isinstance(value, list) else str(value)
            recs[typ].append(value)
        if not has_txt:
            recs["TXT"] = recs["SPF"]
        if recs["A"]:
            r.a[name] = [str(v) for v in recs["A"]]
        if recs["AAAA"]:
            r.aaaa[name] = [str(v) for v in recs["AAAA"]]
        if recs["TXT"]:
            r.txt[name] = recs["TXT"]
        if recs["MX"]:
            r.mx[name] = [MX(int(p), str(h).rstrip(".") or ".") for p, h in recs["MX"]]
        if recs["CNAME"]:
            r.cname[name] = str(recs["CNAME"][0])
        key = name
        if recs["PTR"] or (timeout and name.lower().endswith(".arpa")):
            key = _ptr_ip(name)
        if recs["PTR"]:
            r.ptr[key] = [str(v) for v in recs["PTR"]]
        if timeout:
            for typ in _TYPES:
                if not recs[typ]:
                    r.fail[f"{typ.lower()} {key if typ == 'PTR' else name}"] = "timeout"
    return r


def _cases() -> list[Any]:
    cases = []
    with DATA.open(encoding="utf-8") as f:
        for doc in yaml.safe_load_all(f):
            for test_id, test in doc["tests"].items():
                marks = [pytest.mark.skip(reason=SKIP[test_id])] if test_id in SKIP else []
                cases.append(pytest.param(doc["zonedata"], test_id, test, id=test_id, marks=marks))
    return cases


@pytest.mark.parametrize(("zonedata", "test_id", "test"), _cases())
async def test_spf_rfc7208_suite(zonedata: dict[str, list[Any]], test_id: str, test: dict[str, Any]) -> None:
    resolver = resolver_for(zonedata)
    rcv = await verify(
        resolver, test["host"], test["mailfrom"], test["helo"], receiving_host="mx.example.org"
    )
    expected = test["result"] if isinstance(test["result"], list) else [test["result"]]
    assert rcv.result in expected, f"{rcv.result} ({rcv.problem}), want {expected}"
    explanation = test.get("explanation")
    if explanation is not None and rcv.result == "fail":
        want = "" if explanation == "DEFAULT" else explanation
        if test_id in EXPLANATION_ANY_CASE:
            assert rcv.explanation.lower() == want.lower()
        else:
            assert rcv.explanation == want
