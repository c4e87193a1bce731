"""The answer / context-picker environment: config, candidate construction, gymnasium env."""
