@{head}
//
// Without EDGEPRUNE_VALIDATION: the inference example. With it (the
// @{env}_validate environment): the edgeprune validate harness.
#include <Arduino.h>
#include <@{port_header}>

#include "@{name}_app.h"
#include "@{name}_sample.h"
#include "config_@{name}.h"
#include "model_@{name}.h"
#include "validation_harness.h"

#if EDGEPRUNE_VALIDATION
@{validate_body}
#else
@{inference_body}
#endif
