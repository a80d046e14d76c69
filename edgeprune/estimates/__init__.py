"""Estimates: operator cost, latency and energy models, their calibration, runtime footprints."""
