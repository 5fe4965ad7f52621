"""Add the performance indexes of ``app.core.indexes`` to a live database, safely.

Usage (the logic lives in ``app/ops/indexes.py``; ``python -m app indexes`` is the same)::

    python add_performance_indexes.py [--database-url URL] [--dry-run | --check] [--lock-timeout 5s]

The URL defaults to ``DATABASE_URL``, else the app's default (the SQLite file under
``DATA_DIR``). The list of indexes is the single one in ``app.core.indexes``, the same
the models and migrations use, so a migrated database and an upgraded old one end up alike.

PostgreSQL: each index is built with ``CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS``
in autocommit mode (a concurrent build cannot run in a transaction), so reads and writes
go on during the build. ``lock_timeout`` (``--lock-timeout``) bounds each wait for a lock
(a long-running transaction makes a concurrent build wait, and an index that cannot get
its lock fails instead of queueing everyone behind it); ``statement_timeout`` is 0 so a
long build is not cut short. An index present but INVALID (left by an interrupted
concurrent build) is dropped concurrently and rebuilt. A build that fails leaves such an
invalid index behind: it is dropped at once so the next run starts clean. Every table
that got an index is ANALYZEd (PostgreSQL only gathers statistics on the ``lower(...)``
expressions at ANALYZE time).

SQLite: ``CREATE [UNIQUE] INDEX IF NOT EXISTS`` then ``ANALYZE``.

Output: one line per index (index, table, status, seconds), status being ``created``,
``already present``, ``rebuilt``, ``failed: <the database's message>`` (the other indexes
still run), ``missing`` / ``invalid`` (``--check``) or ``would create`` /
``would rebuild`` (``--dry-run``), and a one-line summary. Running it again changes
nothing: every index is then ``already present``.

Options:
  --dry-run   print the SQL it would run (including DROP for invalid indexes and ANALYZE);
              change nothing; exit 0.
  --check     change nothing; exit 1 if any index is missing or invalid, else 0.

Exit codes: 0 success; 1 an index failed (or, with ``--check``, is missing or invalid);
2 the schema is not migrated (run ``python -m app migrate`` first) or the database is
unreachable; 130 interrupted (run it again: an interrupted build is rebuilt).
"""

from app.ops.indexes import main

if __name__ == "__main__":
    raise SystemExit(main())
