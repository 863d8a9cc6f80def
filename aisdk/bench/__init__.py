"""`aisdk bench`: how lean the runtime is, measured beside raw nats-py, raw
upb and FastStream in the same run on the same nats-server.

Kept apart from the tests: a timed assertion on a shared 2-core machine is
noise, so the test suite only checks the shape of a quick run
(tests/test_bench_smoke.py) and the figures live in docs/performance.md.
"""
