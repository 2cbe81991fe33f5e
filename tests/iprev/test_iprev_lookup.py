from mox.dns import MockResolver
from mox.iprev import Status, lookup


def resolver() -> MockResolver:
    return MockResolver(
        ptr={
            "10.0.0.1": ["mail.example.org."],
            "10.0.0.2": ["other.example.org"],
            "10.0.0.3": ["gone.example.org", "mail.example.org"],
            "2001:db8::1": ["v6.example.org"],
            "10.0.0.4": ["broken.example.org"],
        },
        a={"mail.example.org": ["10.0.0.1", "10.0.0.3"], "other.example.org": ["10.9.9.9"]},
        aaaa={"v6.example.org": ["2001:db8::1"]},
        fail={"broken.example.org": "temporary", "10.0.0.5": "temporary"},
    )


async def test_pass_when_ptr_name_resolves_back() -> None:
    r = await lookup("10.0.0.1", resolver())
    assert r.status == Status.PASS
    assert r.name == "mail.example.org"
    assert r.names == ("mail.example.org",)


async def test_pass_with_second_name_and_ipv6() -> None:
    r = await lookup("10.0.0.3", resolver())
    assert (r.status, r.name) == (Status.PASS, "mail.example.org")
    r = await lookup("2001:db8::1", resolver())
    assert (r.status, r.name) == (Status.PASS, "v6.example.org")


async def test_fail_when_forward_does_not_match() -> None:
    r = await lookup("10.0.0.2", resolver())
    assert r.status == Status.FAIL
    assert r.names == ("other.example.org",)


async def test_permerror_without_ptr() -> None:
    r = await lookup("10.0.0.9", resolver())
    assert r.status == Status.PERMERROR


async def test_temperror_on_dns_failure() -> None:
    assert (await lookup("10.0.0.4", resolver())).status == Status.TEMPERROR
    assert (await lookup("10.0.0.5", resolver())).status == Status.TEMPERROR


async def test_authentic_only_when_all_answers_are() -> None:
    res = resolver()
    res.all_authentic = True
    assert (await lookup("10.0.0.1", res)).authentic
    res.inauthentic.add("mail.example.org")
    assert not (await lookup("10.0.0.1", res)).authentic
