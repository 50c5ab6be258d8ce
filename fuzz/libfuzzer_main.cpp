#include "fuzz/record_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  annexswarm::fuzz::record_target(data, size);
  return 0;
}
