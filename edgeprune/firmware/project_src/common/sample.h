@{head}
//
// The input the example runs: @{sample_source}
// Replace it with your sensor's data, in the float units the model was
// trained on; the example quantizes it with the model's input scale.
#ifndef @{guard}_SAMPLE_H_
#define @{guard}_SAMPLE_H_

#include <stddef.h>

namespace @{name}_app {

constexpr size_t kSampleCount = @{sample_count};
constexpr float kSample[kSampleCount] = {
@{sample_values}
};

}  // namespace @{name}_app

#endif  // @{guard}_SAMPLE_H_
