"""Firmware for a TFLite Micro board: the C array, op resolver, config constants,
the validation harness and the Arduino sketch."""
