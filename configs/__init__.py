"""Shipped configurations (package data: ``*.toml``, ``formatbooks/*.toml``)."""
