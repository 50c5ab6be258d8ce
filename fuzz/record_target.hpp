#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace annexswarm::fuzz {
// Feeds one input to every record decoder and to the sealed-record opener.
void record_target(const std::uint8_t* data, std::size_t size);
// Valid encodings of each record kind, to start mutating from.
std::vector<std::vector<std::uint8_t>> record_seeds();
}  // namespace annexswarm::fuzz
