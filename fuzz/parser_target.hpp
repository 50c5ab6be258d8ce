#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace annexswarm::fuzz {
// Feeds one input to every parser of untrusted bytes: record decoders, the sealed
// record opener, annex key parsing, peer frame decoding and the frame stream reader.
void parse_untrusted(const std::uint8_t* data, std::size_t size);
// Valid encodings of each record kind and frame type, to start mutating from.
std::vector<std::vector<std::uint8_t>> parser_seeds();
}  // namespace annexswarm::fuzz
