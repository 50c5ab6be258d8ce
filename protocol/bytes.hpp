#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace annexswarm {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;
using MutableByteView = std::span<std::uint8_t>;

inline ByteView as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string to_hex(ByteView data);
std::optional<Bytes> from_hex(std::string_view hex);

// RFC 4648 base32, lower case, no padding: easy to read aloud and to paste.
std::string to_base32(ByteView data);
std::optional<Bytes> from_base32(std::string_view text);

}  // namespace annexswarm
