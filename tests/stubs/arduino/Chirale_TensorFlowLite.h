// Stub: the real header pulls in the TFLite Micro library for Arduino.
