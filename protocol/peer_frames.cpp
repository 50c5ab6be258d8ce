#include "protocol/peer_frames.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "protocol/annex_key.hpp"
#include "protocol/crypto.hpp"
#include "protocol/ip_address.hpp"
#include "protocol/msgpack_fields.hpp"
#include "protocol/records.hpp"

namespace annexswarm::peer {

std::uint64_t chunk_count(std::uint64_t object_size, std::uint32_t chunk_size) {
  return chunk_size == 0 ? 0 : object_size / chunk_size + (object_size % chunk_size != 0);
}
std::uint64_t page_count(std::uint64_t object_size, std::uint32_t chunk_size) {
  auto chunks = chunk_count(object_size, chunk_size);
  return std::max<std::uint64_t>(1, chunks / kManifestPageChunks + (chunks % kManifestPageChunks != 0));
}

const char* check(const ManifestReply& f) {
  if (f.chunk_size == 0) return "zero chunk size";
  if (f.hashes.size() % 32 != 0) return "hash list is not whole SHA-256 digests";
  auto chunks = chunk_count(f.object_size, f.chunk_size);
  if (f.page >= page_count(f.object_size, f.chunk_size)) return "page";
  auto first = std::uint64_t{f.page} * kManifestPageChunks;
  auto here = std::min<std::uint64_t>(kManifestPageChunks, chunks - std::min(chunks, first));
  if (f.hashes.size() / 32 != here) return "chunk count";
  return nullptr;
}
const char* check(const Get& f) {
  if (f.length == 0) return "empty range";
  if (f.offset > UINT64_MAX - f.length) return "range";
  return nullptr;
}
const char* check(const DialBack& f) { return f.port == 0 ? "port" : nullptr; }
const char* check(const Prove& f) {
  if (f.offsets.size() != f.lengths.size() || f.offsets.empty()) return "ranges";
  for (std::size_t i = 0; i < f.offsets.size(); ++i) {
    if (f.lengths[i] == 0 || f.lengths[i] > kMaxProveRange) return "range length";
    if (f.offsets[i] > UINT64_MAX - f.lengths[i]) return "range";
  }
  return nullptr;
}

Bytes prove_mac(ByteView nonce, std::string_view key, ByteView range_bytes) {
  Bytes message(key.begin(), key.end());
  message.push_back(0);
  message.insert(message.end(), range_bytes.begin(), range_bytes.end());
  auto mac = crypto::hmac_sha256(nonce, message);
  return Bytes(mac.begin(), mac.end());
}
const char* check(const ConnectReply& f) {
  return f.ok && f.token.size() != kCircuitToken ? "token" : nullptr;
}

namespace {
using detail::FieldReader;
using detail::Packer;

const msgpack::unpack_limit kFrameLimits(/*array*/ kMaxHaveKeys + 8, /*map*/ 0,
                                         /*str*/ AnnexKey::kMaxLength, /*bin*/ kMaxFrame,
                                         /*ext*/ 0, /*depth*/ 3);

void put_length(std::uint8_t* out, std::size_t n) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<std::uint8_t>(n >> (24 - 8 * i));
}

// ---- Writing one field: by its C++ type. ----
template <class T>
void pack_value(Packer& pk, const T& v) {
  if constexpr (std::is_enum_v<T>) pk.pack(static_cast<std::underlying_type_t<T>>(v));
  else pk.pack(v);
}
void pack_value(Packer& pk, const Bytes& v) { detail::pack_bin(pk, v); }
void pack_value(Packer& pk, const NodeId& v) { detail::pack_bin(pk, v.bytes); }
void pack_value(Packer& pk, const std::vector<std::string>& v) {
  pk.pack_array(static_cast<std::uint32_t>(v.size()));
  for (const auto& s : v) pk.pack(s);
}
void pack_value(Packer& pk, const std::vector<std::uint64_t>& v) {
  pk.pack_array(static_cast<std::uint32_t>(v.size()));
  for (auto x : v) pk.pack(x);
}

// ---- Checking one field's value against its rule (both ways). ----
template <class T>
bool allowed(const T&, rule::Plain) { return true; }
bool allowed(const std::string& s, rule::Text r) { return s.size() <= r.max; }
bool allowed(const std::string& s, rule::Key) { return s.size() <= AnnexKey::kMaxLength && AnnexKey::parse(s).ok(); }
bool allowed(const std::string& s, rule::Uuid r) { return s.empty() ? r.allow_empty : is_annex_uuid(s); }
bool allowed(const std::string& s, rule::IpOrEmpty) {
  return s.empty() || (s.size() <= kMaxAddressText && is_ip_literal(s));
}
template <class B>
bool allowed_bytes(const B& b, rule::Blob r) { return b.size() <= r.max && (r.exact == 0 || b.size() == r.exact); }
bool allowed(const Bytes& b, rule::Blob r) { return allowed_bytes(b, r); }
bool allowed(const ByteView& b, rule::Blob r) { return allowed_bytes(b, r); }
bool allowed(const std::vector<std::string>& v, rule::KeyList r) {
  return v.size() <= r.max && std::all_of(v.begin(), v.end(), [](const std::string& k) { return allowed(k, rule::Key{}); });
}
bool allowed(const std::vector<std::uint64_t>& v, rule::UintList r) { return v.size() <= r.max; }

// ---- Reading one field: by its C++ type and rule; nullopt when it breaks the rule. ----
template <class T>
std::optional<T> read_value(const FieldReader& r, std::size_t i, rule::Plain) {
  if constexpr (std::is_same_v<T, bool>) {
    return r.boolean(i);
  } else if constexpr (std::is_enum_v<T>) {
    auto v = read_value<std::underlying_type_t<T>>(r, i, rule::Plain{});
    if (!v) return std::nullopt;
    return static_cast<T>(*v);
  } else if constexpr (std::is_same_v<T, NodeId>) {
    auto b = r.bin(i, 20);
    if (!b || b->size() != 20) return std::nullopt;
    NodeId id;
    std::copy(b->begin(), b->end(), id.bytes.begin());
    return id;
  } else {
    static_assert(std::is_unsigned_v<T>, "a plain field is an unsigned integer, a bool, an enum or a NodeId");
    auto v = r.uint(i);
    if (!v || *v > std::numeric_limits<T>::max()) return std::nullopt;
    return static_cast<T>(*v);
  }
}
template <class T, class Rule>
std::optional<T> read_value(const FieldReader& r, std::size_t i, Rule rule) {
  std::optional<T> out;
  if constexpr (std::is_same_v<T, std::string>) {
    std::size_t max = AnnexKey::kMaxLength;
    if constexpr (std::is_same_v<Rule, rule::Text>) max = rule.max;
    if constexpr (std::is_same_v<Rule, rule::Uuid>) max = 64;
    if constexpr (std::is_same_v<Rule, rule::IpOrEmpty>) max = kMaxAddressText;
    out = r.str(i, max);
  } else if constexpr (std::is_same_v<T, Bytes>) {
    if (auto b = r.bin(i, rule.max)) out = Bytes(b->begin(), b->end());
  } else if constexpr (std::is_same_v<T, ByteView>) {
    out = r.bin(i, rule.max);
  } else if constexpr (std::is_same_v<T, std::vector<std::string>> || std::is_same_v<T, std::vector<std::uint64_t>>) {
    const auto& o = r.at(i);
    if (o.type != msgpack::type::ARRAY || o.via.array.size > rule.max) return std::nullopt;
    FieldReader items(o, "list");
    T list;
    for (std::size_t k = 0; k < items.size(); ++k) {
      std::optional<typename T::value_type> item;
      if constexpr (std::is_same_v<T, std::vector<std::string>>) item = items.str(k, AnnexKey::kMaxLength);
      else item = items.uint(k);
      if (!item) return std::nullopt;
      list.push_back(std::move(*item));
    }
    out = std::move(list);
  } else {
    static_assert(sizeof(T) == 0, "no reader for this field type and rule");
  }
  if (out && !allowed(*out, rule)) return std::nullopt;
  return out;
}

// ---- A whole frame, from its spec. ----
template <class F>
bool frame_allowed(const F& f) {
  bool ok = std::apply([&](const auto&... fd) { return (allowed(f.*fd.member, fd.rule) && ...); }, kSpec<F>.fields);
  return ok && check(f) == nullptr;
}

template <class F>
void pack_frame(Packer& pk, const F& f) {
  constexpr auto& s = kSpec<F>;
  pk.pack_array(1 + std::tuple_size_v<decltype(s.fields)>);
  pk.pack(s.type);
  std::apply([&](const auto&... fd) { (pack_value(pk, f.*fd.member), ...); }, s.fields);
}

template <class F>
Result<F> read_frame(const FieldReader& r) {
  constexpr auto& s = kSpec<F>;
  constexpr std::size_t count = std::tuple_size_v<decltype(s.fields)>;
  if (r.size() != 1 + count) return r.fail(s.name);
  F f{};
  std::size_t i = 1;
  bool ok = std::apply(
      [&](const auto&... fd) {
        return ([&](const auto& one) {
          using Member = std::remove_cvref_t<decltype(f.*one.member)>;
          auto v = read_value<Member>(r, i++, one.rule);
          if (!v) return false;
          f.*one.member = std::move(*v);
          return true;
        }(fd) && ...);
      },
      s.fields);
  if (!ok) return r.fail(s.name);
  if (auto why = check(f)) return r.fail(std::string(s.name) + " (" + why + ")");
  return f;
}

// Finds the alternative of Frame with this type number.
template <std::size_t I = 0>
Result<Frame> read_any(std::uint64_t type, const FieldReader& r) {
  if constexpr (I == std::variant_size_v<Frame>) {
    return Error{"unknown frame type " + std::to_string(type)};
  } else {
    using F = std::variant_alternative_t<I, Frame>;
    if (kSpec<F>.type != type) return read_any<I + 1>(type, r);
    auto f = read_frame<F>(r);
    if (!f) return Error{f.error()};
    return Frame{std::move(*f)};
  }
}

Result<Frame> decode_fields(const FieldReader& r) {
  auto type = r.uint(0);
  if (!type) return r.fail("type");
  return read_any(*type, r);
}

Result<Bytes> encode(const Frame& frame, bool checked) {
  if (checked && !std::visit([](const auto& f) { return frame_allowed(f); }, frame))
    return Error{std::string("cannot send a ") + frame_name(frame) + " frame whose fields break their limits"};
  msgpack::sbuffer buf;
  Packer pk(buf);
  std::visit([&](const auto& f) { pack_frame(pk, f); }, frame);
  if (buf.size() > kMaxFrame)
    return Error{std::string("a ") + frame_name(frame) + " frame of " + std::to_string(buf.size()) +
                 " bytes is over the frame cap of " + std::to_string(kMaxFrame)};
  Bytes out(4 + buf.size());
  put_length(out.data(), buf.size());
  std::copy_n(reinterpret_cast<const std::uint8_t*>(buf.data()), buf.size(), out.begin() + 4);
  return out;
}

}  // namespace

const char* frame_name(const Frame& frame) {
  return std::visit([](const auto& f) { return kSpec<std::remove_cvref_t<decltype(f)>>.name; }, frame);
}

Result<Bytes> encode_frame(const Frame& frame) { return encode(frame, true); }
Result<Bytes> encode_frame_unchecked(const Frame& frame) { return encode(frame, false); }

Bytes membership_mac(const SwarmToken& swarm, ByteView exporter, Role role) {
  Bytes input{static_cast<std::uint8_t>(role)};
  input.insert(input.end(), exporter.begin(), exporter.end());
  auto mac = crypto::hmac_sha256(swarm.proof_key(), input);
  return Bytes(mac.begin(), mac.end());
}

namespace {
// A frame body with one frame type (`View`, whose payload points into the body) decoded as
// a view, and every other frame decoded in full.
template <class View>
Result<std::variant<View, Frame>> decode_with_view(ByteView body) {
  using Out = std::variant<View, Frame>;
  if (body.size() > kMaxFrame) return Error{"frame is oversized"};
  return detail::unpack_array<Out>(body, kFrameLimits, "frame", [](const FieldReader& r) -> Result<Out> {
    if (r.uint(0) == kSpec<View>.type) {
      auto v = read_frame<View>(r);
      if (!v) return Error{v.error()};
      return Out{*v};
    }
    auto f = decode_fields(r);
    if (!f) return Error{f.error()};
    return Out{std::move(*f)};
  });
}
}  // namespace

Result<FrameView> decode_frame_body_view(ByteView body) { return decode_with_view<DataView>(body); }

Result<TunnelFrameView> decode_tunnel_frame_view(ByteView body) { return decode_with_view<StreamView>(body); }

Bytes encode_data_header(std::uint32_t id, std::uint64_t offset, bool fin, std::size_t payload) {
  msgpack::sbuffer buf(kMaxDataHeader);
  Packer pk(buf);
  // Data's fields as pack_frame writes them, up to the payload's bin header.
  pk.pack_array(1 + std::tuple_size_v<decltype(kSpec<Data>.fields)>);
  pk.pack(kSpec<Data>.type);
  pk.pack(id);
  pk.pack(offset);
  pk.pack(fin);
  pk.pack_bin(static_cast<std::uint32_t>(payload));
  Bytes out(4 + buf.size());
  put_length(out.data(), buf.size() + payload);
  std::copy_n(reinterpret_cast<const std::uint8_t*>(buf.data()), buf.size(), out.begin() + 4);
  return out;
}

Bytes encode_stream_header(std::size_t payload) {
  msgpack::sbuffer buf(kMaxStreamHeader);
  Packer pk(buf);
  // Stream's fields as pack_frame writes them: the payload's bin, then fin.
  pk.pack_array(1 + std::tuple_size_v<decltype(kSpec<Stream>.fields)>);
  pk.pack(kSpec<Stream>.type);
  pk.pack_bin(static_cast<std::uint32_t>(payload));
  Bytes out(4 + buf.size());
  put_length(out.data(), buf.size() + payload + 1);
  std::copy_n(reinterpret_cast<const std::uint8_t*>(buf.data()), buf.size(), out.begin() + 4);
  return out;
}

std::uint8_t encode_stream_trailer(bool fin) { return fin ? 0xc3 : 0xc2; }  // msgpack true / false

Result<Frame> decode_frame_body(ByteView body) {
  if (body.size() > kMaxFrame) return Error{"frame is oversized"};
  return detail::unpack_array<Frame>(body, kFrameLimits, "frame", decode_fields);
}

namespace {
// Enough for a few of the largest frames: once the buffer is this big, what is left of a
// frame moves to the front at most once per few frames.
constexpr std::size_t kReaderCapacity = 4 * kMaxFrame;
}  // namespace

MutableByteView FrameReader::space(std::size_t min) {
  if (begin_ == end_) begin_ = end_ = 0;
  if (buffer_.size() - end_ < min) {
    std::size_t held = end_ - begin_;
    // Grow while the buffer is small for what it holds; past the cap, or when little is
    // held, move the held bytes to the front instead.
    if (held > buffer_.size() / 4 && buffer_.size() < kReaderCapacity)
      buffer_.resize(std::min(kReaderCapacity, std::max(buffer_.size() * 2, held + min)));
    if (buffer_.size() - end_ < min) {
      if (held > 0 && begin_ > 0) std::memmove(buffer_.data(), buffer_.data() + begin_, held);
      begin_ = 0;
      end_ = held;
      if (buffer_.size() - end_ < min) buffer_.resize(end_ + min);
    }
  }
  return MutableByteView(buffer_.data() + end_, buffer_.size() - end_);
}

void FrameReader::commit(std::size_t n) { end_ += std::min(n, buffer_.size() - end_); }

void FrameReader::feed(ByteView bytes) {
  if (failed_) return;
  auto room = space(bytes.size());
  std::copy(bytes.begin(), bytes.end(), room.begin());
  commit(bytes.size());
}

std::optional<Result<ByteView>> FrameReader::next() {
  if (failed_) return std::nullopt;
  if (end_ - begin_ < 4) return std::nullopt;
  const auto* p = buffer_.data() + begin_;
  std::uint32_t n = static_cast<std::uint32_t>(p[0]) << 24 | static_cast<std::uint32_t>(p[1]) << 16 |
                    static_cast<std::uint32_t>(p[2]) << 8 | p[3];
  if (n > kMaxFrame || n == 0) {
    failed_ = true;
    return Result<ByteView>(Error{"frame length " + std::to_string(n) + " is outside 1.." +
                               std::to_string(kMaxFrame)});
  }
  if (end_ - begin_ - 4 < n) return std::nullopt;
  begin_ += 4 + n;
  return Result<ByteView>(ByteView(p + 4, n));
}

}  // namespace annexswarm::peer
