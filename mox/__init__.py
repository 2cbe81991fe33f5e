"""moxmail: a self-hosted mail server, a Python reimplementation of mox.

The import package is ``mox``; the command line is ``mox`` (see mox.cli).
"""

__version__ = "0.1.0.dev0"
