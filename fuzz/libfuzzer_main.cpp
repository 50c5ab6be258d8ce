#include "fuzz/parser_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  annexswarm::fuzz::parse_untrusted(data, size);
  return 0;
}
