"""Who may do what: tokens, sessions, permissions, and the audit log."""
