"""edgeprune: turn a trained Keras model into a firmware-ready model for a named device.

Importing this package is cheap: TensorFlow is imported only by the modules
that need it (``keras_adapter``, ``prune``, ``convert``), and only when a
stage that needs it runs.
"""

__version__ = "0.1.0"
