#pragma once
// Shared by the decoders of untrusted msgpack (DHT records, peer frames): parse with
// hard limits, require exactly one array and no trailing bytes, read typed fields.
// Decoders return errors; nothing here throws past unpack_array.
#include <msgpack.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "protocol/bytes.hpp"
#include "protocol/result.hpp"

namespace annexswarm::detail {

using Packer = msgpack::packer<msgpack::sbuffer>;

inline Bytes finish(const msgpack::sbuffer& buf) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(buf.data());
  return Bytes(p, p + buf.size());
}

inline void pack_bin(Packer& pk, ByteView bytes) {
  pk.pack_bin(static_cast<std::uint32_t>(bytes.size()));
  pk.pack_bin_body(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// Typed access to the elements of one msgpack array; nullopt for a wrong type or size.
class FieldReader {
public:
  FieldReader(const msgpack::object& array, std::string_view what) : array_(array), what_(what) {}

  std::size_t size() const { return array_.via.array.size; }
  const msgpack::object& at(std::size_t i) const { return array_.via.array.ptr[i]; }

  std::optional<std::uint64_t> uint(std::size_t i) const {
    const auto& o = at(i);
    if (o.type != msgpack::type::POSITIVE_INTEGER) return std::nullopt;
    return o.via.u64;
  }
  std::optional<bool> boolean(std::size_t i) const {
    const auto& o = at(i);
    if (o.type != msgpack::type::BOOLEAN) return std::nullopt;
    return o.via.boolean;
  }
  std::optional<std::string> str(std::size_t i, std::size_t max) const {
    const auto& o = at(i);
    if (o.type != msgpack::type::STR || o.via.str.size > max) return std::nullopt;
    return std::string(o.via.str.ptr, o.via.str.size);
  }
  std::optional<ByteView> bin(std::size_t i, std::size_t max) const {
    const auto& o = at(i);
    if (o.type != msgpack::type::BIN || o.via.bin.size > max) return std::nullopt;
    return ByteView(reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr), o.via.bin.size);
  }
  Error fail(std::string_view field) const {
    return Error{std::string(what_) + " has a malformed " + std::string(field)};
  }

private:
  const msgpack::object& array_;
  std::string_view what_;
};

// Parses `data` as exactly one msgpack array within `limits` and hands it to `fn`.
template <class T, class Fn>
Result<T> unpack_array(ByteView data, const msgpack::unpack_limit& limits, std::string_view what, Fn&& fn) {
  try {
    std::size_t offset = 0;
    // BIN objects point into `data` instead of being copied: decoders copy what they keep.
    auto reference_bin = [](msgpack::type::object_type type, std::size_t, void*) {
      return type == msgpack::type::BIN;
    };
    auto handle = msgpack::unpack(reinterpret_cast<const char*>(data.data()), data.size(), offset,
                                  reference_bin, nullptr, limits);
    if (offset != data.size()) return Error{std::string(what) + " has trailing bytes"};
    const msgpack::object& obj = handle.get();
    if (obj.type != msgpack::type::ARRAY || obj.via.array.size < 1)
      return Error{std::string(what) + " is not a msgpack array"};
    return fn(FieldReader(obj, what));
  } catch (const std::exception& e) {
    return Error{std::string(what) + " is not valid msgpack (" + e.what() + ")"};
  }
}

}  // namespace annexswarm::detail
