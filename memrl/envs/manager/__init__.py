"""The memory-manager environment: config, episode engine, gymnasium env."""
