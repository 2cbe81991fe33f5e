"""The mox command line; see mox.cli.main."""
