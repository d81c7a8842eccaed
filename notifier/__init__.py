"""Durable after-response work: an outbox in the database, a process-wide pool."""
