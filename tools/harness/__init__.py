"""Real processes for tests and benchmarks, started on free loopback ports and stopped after:
the service under Gunicorn (``server``), SeaweedFS (``seaweedfs``), PgBouncer (``pgbouncer``),
several nodes together (``cluster``), and clients that send their requests slowly
(``slow_clients``)."""
