"""Cross-cutting pieces: settings, database, security, errors, request limits."""
