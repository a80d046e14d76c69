"""Adapters: the only modules that import TensorFlow and tf_keras, Keras 3, tfmot
and the TFLite converter."""
