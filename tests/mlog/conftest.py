from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from mox import mlog


@pytest.fixture(autouse=True)
def out() -> Iterator[io.StringIO]:
    """Capture mlog output; restore the global configuration afterwards."""
    saved = mlog.get_config()
    buf = io.StringIO()
    mlog.set_output(buf)
    try:
        yield buf
    finally:
        mlog.uninstall_stdlib_bridge()
        mlog.set_config(saved)
        mlog.set_output(None)
        mlog.set_logfmt(True)
        mlog.set_timestamps(False)
