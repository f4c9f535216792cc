"""Model registry: versions, aliases, the promotion gate, rollback."""
