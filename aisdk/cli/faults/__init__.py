"""Fault scenarios on real servers on loopback: a nats-server restarted, a
worker killed mid-handler, a cluster node lost, a slow consumer, PostgreSQL
restarted, poison messages. Each counts what it sent and what reached the
database, and reports lost and duplicated effects (`aisdk chaos`).

This package composes servers, workers and components; it is not part of
the runtime library.
"""
