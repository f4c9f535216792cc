"""Operations: metrics and logs, housekeeping, backup, the background timer, webhooks, demo data."""
