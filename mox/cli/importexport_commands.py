"""The import and export subcommands of mox."""
