"""Measurements of the service: `python -m bench` from the repository root.

Every figure comes from real processes on 127.0.0.1: the service started as
`python server.py`, the loopback SMTP and WhatsApp stand-ins of the tests, and
a load generator in a process of its own. See `python -m bench --help`.
"""
