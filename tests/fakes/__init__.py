"""Local fakes of external services, for tests (real HTTP on loopback, no network)."""
