"""The kernel: settings, the core object, errors, entities, events, limits, projects."""
