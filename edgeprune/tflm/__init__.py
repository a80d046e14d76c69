"""TFLite Micro: the interpreter behind a crash-safe worker process, and the emulated board."""
