"""ctl commands for mbox/maildir import and export (see mox.store.importexport)."""
