"""``mox serve``: the server process (listeners, ctl socket, config reload, shutdown)."""
