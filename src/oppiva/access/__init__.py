"""Access control: staff accounts and roles, API keys, login tokens, and the audit log."""
