"""The command table used to import only the CLI module a command needs matches the sources."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from mox.cli import main as climain

CLI = Path(climain.__file__).parent


def test_command_words_match_sources() -> None:
    found: dict[str, set[str]] = defaultdict(set)
    modules = set()
    for f in CLI.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", "") == "command"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found[node.args[0].value.split()[0]].add(f.stem)
                modules.add(f.stem)
    assert set(climain.COMMAND_MODULES) == modules
    table = {k: set(v) for k, v in climain.COMMAND_WORDS.items() if k != "help"}
    assert table == {k: v for k, v in found.items() if k != "help"}


def test_one_command_imports_only_its_module() -> None:
    code = (
        "import sys\n"
        "from mox.cli.main import main\n"
        "rc = main(['version'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('mox.cli.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = out.strip().splitlines()[-1]
    assert "queue_commands" not in loaded and "mox.cli.commands" in loaded


def test_listing_order_is_stable(capsys: object) -> None:
    climain.load_commands("queue")
    climain.load_commands()
    names = [c.fn.__module__ for c in climain.COMMANDS]
    order = [climain.COMMAND_MODULES.index(n.rsplit(".", 1)[-1]) for n in names]
    assert order == sorted(order)
