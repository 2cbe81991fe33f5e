"""ctl commands for account, alias and domain administration (see mox.config.edit)."""
