"""Organizational domains from the Public Suffix List (RFC 7489 section 3.2).

DMARC relaxed alignment compares *organizational domains*: the public suffix of
a name plus one more label (``mail.example.co.uk`` -> ``example.co.uk``). The
public suffixes come from the Public Suffix List (https://publicsuffix.org/),
of which a copy ships with this package (``public_suffix_list.txt``, MPL-2.0,
licence header kept in the file; taken from the ``publicsuffixlist`` package on
PyPI, version 1.1.2.20261023), so no network access is needed at run time. It
is named ``.txt`` (the list's own name ends in ``.dat``), as upstream mox does,
so the package-data patterns ship it. An operator can load a newer copy with
:func:`set_default_list`, or point ``MOX_PUBLICSUFFIX_LIST`` at a file.

Decisions, as upstream mox:

- Only the ICANN section of the list is used, not the private domains
  (RFC 7489 erratum 6729): otherwise e.g. every ``*.github.io`` site would be
  its own organizational domain for DMARC, while the owners of the private
  section entries never asked for that.
- A name that is itself a public suffix (or shorter than its suffix rule plus
  one label) is its own organizational domain.
- Rules are matched on the Unicode form of names (the list is written in
  Unicode); the result carries both forms.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from mox.dns import Domain

log = logging.getLogger("mox.publicsuffix")

LIST_PATH = Path(__file__).with_name("public_suffix_list.txt")
# Environment variable naming a newer copy of the list to use instead.
LIST_ENV = "MOX_PUBLICSUFFIX_LIST"

_BEGIN_ICANN = "// ===BEGIN ICANN DOMAINS==="
_END_ICANN = "// ===END ICANN DOMAINS==="


@dataclass
class List:
    """Parsed suffix rules; keys are label tuples in reverse order (``("uk", "co")``)."""

    # Normal and wildcard rules; a wildcard rule "*.ck" is stored with its "*" label.
    rules: set[tuple[str, ...]] = field(default_factory=set)
    # Exception rules ("!www.ck"), stored without the "!".
    exceptions: set[tuple[str, ...]] = field(default_factory=set)

    @classmethod
    def parse(cls, text: str) -> List:
        """Parse the list's text format (https://publicsuffix.org/list/), ICANN section only.

        Each rule is the first whitespace-delimited word of a line; comments
        start with "//".
        """
        lst = cls()
        icann = False
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith(_BEGIN_ICANN):
                icann = True
                continue
            if line.startswith(_END_ICANN):
                icann = False
                continue
            if not icann or not line or line.startswith("//"):
                continue
            word = line.split()[0].lower()
            if word.startswith("!"):
                lst.exceptions.add(tuple(reversed(word[1:].split("."))))
            else:
                lst.rules.add(tuple(reversed(word.split("."))))
        return lst

    @classmethod
    def from_file(cls, path: str | Path) -> List:
        """Read and parse a copy of the list (public_suffix_list.dat)."""
        return cls.parse(Path(path).read_text(encoding="utf-8"))

    def _match(self, rules: set[tuple[str, ...]], labels: list[str]) -> int:
        """Number of labels of the longest rule in rules matching the end of labels, 0 if none."""
        best = 0
        rev = list(reversed(labels))
        for n in range(1, len(rev) + 1):
            prefix = tuple(rev[:n])
            wild = (*prefix[:-1], "*")
            if prefix in rules or wild in rules:
                best = n
        return best

    def org_domain_labels(self, labels: list[str]) -> int:
        """How many trailing labels form the organizational domain (may exceed len(labels))."""
        # https://publicsuffix.org/list/ "Algorithm": an exception rule wins and
        # its public suffix is the rule minus its leftmost label, so the
        # organizational domain is the whole exception rule.
        n = self._match(self.exceptions, labels)
        if n:
            return n
        # Otherwise the longest matching rule; "*" (one label) when none matches.
        n = self._match(self.rules, labels)
        return (n or 1) + 1

    def lookup(self, domain: Domain) -> Domain:
        """The organizational domain of domain (RFC 7489 section 3.2)."""
        labels = domain.name.split(".")
        n = self.org_domain_labels(labels)
        if len(labels) <= n:
            return domain
        ascii_labels = domain.ascii.split(".")
        ascii_name = ".".join(ascii_labels[-n:])
        if domain.unicode:
            uni = ".".join(labels[-n:])
            return Domain(ascii_name, "" if uni == ascii_name else uni)
        return Domain(ascii_name)


_default: List | None = None


def default_list() -> List:
    """The list in use: set by :func:`set_default_list`, else the file named by
    ``MOX_PUBLICSUFFIX_LIST``, else the bundled copy."""
    global _default
    if _default is None:
        _default = List.from_file(os.environ.get(LIST_ENV) or LIST_PATH)
        log.debug(
            "public suffix list loaded rules=%d exceptions=%d", len(_default.rules), len(_default.exceptions)
        )
    return _default


def set_default_list(lst: List | None) -> None:
    """Use another list (e.g. ``List.from_file`` of a newer copy); None restores the bundled one."""
    global _default
    _default = lst


def lookup(domain: Domain) -> Domain:
    """The organizational domain of domain per the default list (RFC 7489 section 3.2).

    Example: ``lookup(parse_domain("mail.example.co.uk")) == Domain("example.co.uk")``.
    """
    return default_list().lookup(domain)


__all__ = ["LIST_ENV", "LIST_PATH", "List", "default_list", "lookup", "set_default_list"]
