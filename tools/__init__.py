"""Development tools shared by the tests, the benchmarks and the load test: the real processes
they start (``tools.harness``), the fixture photos and composites of them, the accounts they
create, the browser they drive, and the scoring of face matching.

Nothing here is shipped with the service: ``tools`` imports ``app`` and nothing else of the
project, and only ``tests``, ``benchmarks`` and ``loadtest`` import it.
"""
