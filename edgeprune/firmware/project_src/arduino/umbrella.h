@{head}
//
// Include this (#include <@{name}.h>) to use the model: it pulls in the
// TensorFlow Lite Micro library for Arduino (@{port_name} @{port_version})
// and every header of the model.
#ifndef @{guard}_ARDUINO_H_
#define @{guard}_ARDUINO_H_

#include <@{port_header}>

#include "@{name}_app.h"
#include "@{name}_sample.h"
#include "config_@{name}.h"
@{labels_include}#include "model_@{name}.h"
#include "ops_@{name}.h"
#include "validation_harness.h"

#endif  // @{guard}_ARDUINO_H_
