"""Shipped data (package data): workloads, energy assumptions, the video fixture."""
