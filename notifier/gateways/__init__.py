"""Gateways: each turns its own verified callback into a `Payment`."""
