#include "dexloop/error.hpp"

#include <cstdio>

namespace dexloop {

std::string format_seconds(double seconds) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.6f", seconds);
  return buffer;
}

}  // namespace dexloop
