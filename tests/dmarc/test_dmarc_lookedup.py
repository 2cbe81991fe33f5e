"""dmarc.verify with a record the caller looked up already (the SMTP server looks it up concurrently with DKIM)."""

from mox.dmarc import Policy, Status, lookup, verify
from mox.dns import MockResolver, parse_domain


async def test_verify_uses_given_lookup_without_querying() -> None:
    d = parse_domain("example.org")
    lk = await lookup(d, MockResolver(txt={"_dmarc.example.org": ["v=DMARC1; p=reject"]}))
    # This resolver fails every query: the result can only come from the given lookup.
    failing = MockResolver(fail={"_dmarc.example.org": "temporary", "example.org": "temporary"})
    use, r = await verify(failing, d, [], "fail", d, apply_random_percentage=False, looked_up=lk)
    assert (use, r.status, r.policy_applied, r.reject) == (True, Status.FAIL, Policy.REJECT, True)
    # Without it, verify looks the record up itself (and here gets the temporary error).
    _, r = await verify(failing, d, [], "fail", d, apply_random_percentage=False)
    assert r.status == Status.TEMPERROR
