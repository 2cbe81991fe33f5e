from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from mlogparse import parse_lines

from mox import mlog
from mox.mlog.log import Level


@contextmanager
def _bridged() -> Iterator[None]:
    # Installed and removed within the test body: pytest's own capture
    # handlers on the root logger change between test phases.
    mlog.install_stdlib_bridge()
    try:
        yield
    finally:
        mlog.uninstall_stdlib_bridge()


def test_stdlib_records_become_mlog_lines(out: io.StringIO) -> None:
    mlog.set_config({"": Level.INFO})
    with _bridged():
        access = logging.getLogger("aiohttp.access")
        access.info("%s %s", "GET", "/ 200")
        logging.getLogger("asyncio").warning("slow callback")
        logging.getLogger("aiohttp.server").critical("boom")
        access.debug("not written at info")
    assert out.getvalue().splitlines() == [
        'l=info m="GET / 200" pkg=aiohttp.access',
        'l=warn m="slow callback" pkg=asyncio',
        'l=error m="boom" pkg=aiohttp.server',
    ]


def test_package_levels_apply_hierarchically(out: io.StringIO) -> None:
    mlog.set_config({"": Level.INFO})
    with _bridged():
        assert logging.getLogger().level == logging.INFO
        mlog.set_config({"": Level.INFO, "aiohttp": Level.DEBUG, "aiohttp.web": Level.ERROR})
        assert logging.getLogger().level == logging.DEBUG
        logging.getLogger("aiohttp.access").debug("child of aiohttp")
        logging.getLogger("aiohttp.web").warning("web says error only")
        logging.getLogger("asyncio").debug("default says info")
        logging.getLogger("aiohttp.client").log(5, "below debug is trace")
        mlog.set_config({"": Level.INFO, "aiohttp": Level.TRACE})
        assert logging.getLogger().level == 1
        logging.getLogger("aiohttp.client").log(5, "below debug is trace")
    assert [(d["l"], d["m"]) for d in map(dict, parse_lines(out.getvalue()))] == [
        ("debug", "child of aiohttp"),
        ("trace", "below debug is trace"),
    ]


def test_exceptions_give_err_and_stack(out: io.StringIO) -> None:
    with _bridged():
        try:
            raise ValueError("bad header")
        except ValueError:
            logging.getLogger("aiohttp.server").exception("Error handling request")
    (line,) = parse_lines(out.getvalue())
    d = dict(line)
    assert [k for k, _ in line] == ["l", "m", "err", "pkg", "stack"]
    assert (d["l"], d["m"], d["err"], d["pkg"]) == (
        "error",
        "Error handling request",
        "bad header",
        "aiohttp.server",
    )
    assert d["stack"].startswith("Traceback (most recent call last):\n")
    assert d["stack"].endswith("ValueError: bad header")


def test_uninstall_restores_root_logger() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    mlog.install_stdlib_bridge()
    mlog.install_stdlib_bridge()  # Second call has no effect.
    assert [type(h) for h in root.handlers] == [mlog.MlogHandler]
    mlog.uninstall_stdlib_bridge()
    assert root.handlers == handlers
    assert root.level == level
    mlog.set_config({"": Level.TRACE})  # No longer follows the config.
    assert root.level == level
