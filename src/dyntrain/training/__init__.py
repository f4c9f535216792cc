"""Training runs: from a dataset version to a measured model version, with progress."""
