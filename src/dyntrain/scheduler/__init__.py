"""Training scheduler: job table rules, the dispatcher loop and executors."""
