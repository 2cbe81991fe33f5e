"""Account, alias and domain administration subcommands of mox."""
