"""Runners execute a .tflite model on some engine and return its outputs."""
