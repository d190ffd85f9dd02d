"""carebridge adapter: the running system (compliance, outbox, gateway, API, CLI)."""
