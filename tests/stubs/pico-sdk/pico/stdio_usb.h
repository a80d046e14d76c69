#pragma once
inline bool stdio_usb_connected(void) { return true; }
