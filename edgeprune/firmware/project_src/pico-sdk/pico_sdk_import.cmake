# Finds the pico-sdk and includes its own pico_sdk_import.cmake
# (external/pico_sdk_import.cmake in the SDK), so this project carries no copy
# of it: set PICO_SDK_PATH in the environment or with -DPICO_SDK_PATH=...
if(NOT PICO_SDK_PATH AND DEFINED ENV{PICO_SDK_PATH})
  set(PICO_SDK_PATH $ENV{PICO_SDK_PATH})
endif()
if(NOT PICO_SDK_PATH OR NOT EXISTS "${PICO_SDK_PATH}/external/pico_sdk_import.cmake")
  message(FATAL_ERROR
    "pico-sdk not found: set PICO_SDK_PATH to your pico-sdk checkout (2.0 or later)")
endif()
include("${PICO_SDK_PATH}/external/pico_sdk_import.cmake")
