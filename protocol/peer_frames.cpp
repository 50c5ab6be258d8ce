#include "protocol/peer_frames.hpp"

#include <algorithm>

#include "protocol/annex_key.hpp"
#include "protocol/crypto.hpp"
#include "protocol/ip_address.hpp"
#include "protocol/msgpack_fields.hpp"
#include "protocol/records.hpp"

namespace annexswarm::peer {
namespace {
using detail::FieldReader;
using detail::Packer;

enum class Type : std::uint32_t {
  Hello = 1, Proof = 2, Have = 3, HaveReply = 4, Manifest = 5, ManifestReply = 6,
  Get = 7, Data = 8, Cancel = 9, Ping = 10, Pong = 11, Error = 12, Remove = 13,
  DialBack = 14, DialBackReply = 15, Reserve = 16, ReserveReply = 17, Connect = 18, ConnectReply = 19,
  Incoming = 20,
};

const msgpack::unpack_limit kFrameLimits(/*array*/ kMaxHaveKeys + 8, /*map*/ 0,
                                         /*str*/ AnnexKey::kMaxLength, /*bin*/ kMaxFrame,
                                         /*ext*/ 0, /*depth*/ 3);

void begin(Packer& pk, Type type, std::uint32_t fields) {
  pk.pack_array(1 + fields);
  pk.pack(static_cast<std::uint32_t>(type));
}

void data_header(Packer& pk, std::uint32_t id, std::uint64_t offset, bool fin, std::size_t payload) {
  begin(pk, Type::Data, 4);
  pk.pack(id);
  pk.pack(offset);
  pk.pack(fin);
  pk.pack_bin(static_cast<std::uint32_t>(payload));
}

void put_length(std::uint8_t* out, std::size_t n) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<std::uint8_t>(n >> (24 - 8 * i));
}

struct Encoder {
  Packer& pk;
  void operator()(const Hello& f) {
    begin(pk, Type::Hello, 4);
    pk.pack(f.version);
    pk.pack(f.max_frame);
    pk.pack(f.swarm);
    pk.pack(f.agent);
  }
  void operator()(const Proof& f) {
    begin(pk, Type::Proof, 1);
    detail::pack_bin(pk, f.mac);
  }
  void operator()(const Have& f) {
    begin(pk, Type::Have, 3);
    pk.pack(f.id);
    pk.pack_array(static_cast<std::uint32_t>(f.keys.size()));
    for (const auto& k : f.keys) pk.pack(k);
    pk.pack(f.repo);
  }
  void operator()(const Remove& f) {
    begin(pk, Type::Remove, 3);
    pk.pack(f.id);
    pk.pack(f.key);
    pk.pack(f.store);
  }
  void operator()(const HaveReply& f) {
    begin(pk, Type::HaveReply, 2);
    pk.pack(f.id);
    pk.pack_array(static_cast<std::uint32_t>(f.sizes.size()));
    for (auto s : f.sizes) pk.pack(s);
  }
  void operator()(const Manifest& f) {
    begin(pk, Type::Manifest, 2);
    pk.pack(f.id);
    pk.pack(f.key);
  }
  void operator()(const ManifestReply& f) {
    begin(pk, Type::ManifestReply, 4);
    pk.pack(f.id);
    pk.pack(f.chunk_size);
    pk.pack(f.object_size);
    detail::pack_bin(pk, f.hashes);
  }
  void operator()(const Get& f) {
    begin(pk, Type::Get, 4);
    pk.pack(f.id);
    pk.pack(f.key);
    pk.pack(f.offset);
    pk.pack(f.length);
  }
  void operator()(const Data& f) {
    data_header(pk, f.id, f.offset, f.fin, f.bytes.size());
    pk.pack_bin_body(reinterpret_cast<const char*>(f.bytes.data()), f.bytes.size());
  }
  void operator()(const Cancel& f) {
    begin(pk, Type::Cancel, 1);
    pk.pack(f.id);
  }
  void operator()(const Ping& f) {
    begin(pk, Type::Ping, 1);
    pk.pack(f.nonce);
  }
  void operator()(const Pong& f) {
    begin(pk, Type::Pong, 1);
    pk.pack(f.nonce);
  }
  void operator()(const DialBack& f) {
    begin(pk, Type::DialBack, 3);
    pk.pack(f.id);
    pk.pack(f.host);
    pk.pack(f.port);
  }
  void operator()(const DialBackReply& f) {
    begin(pk, Type::DialBackReply, 4);
    pk.pack(f.id);
    pk.pack(f.ok);
    pk.pack(f.observed);
    pk.pack(f.reason);
  }
  void operator()(const Reserve& f) {
    begin(pk, Type::Reserve, 1);
    pk.pack(f.id);
  }
  void operator()(const ReserveReply& f) {
    begin(pk, Type::ReserveReply, 4);
    pk.pack(f.id);
    pk.pack(f.ok);
    pk.pack(f.ttl);
    pk.pack(f.reason);
  }
  void operator()(const Connect& f) {
    begin(pk, Type::Connect, 2);
    pk.pack(f.id);
    detail::pack_bin(pk, f.target.bytes);
  }
  void operator()(const ConnectReply& f) {
    begin(pk, Type::ConnectReply, 4);
    pk.pack(f.id);
    pk.pack(f.ok);
    detail::pack_bin(pk, f.token);
    pk.pack(f.reason);
  }
  void operator()(const Incoming& f) {
    begin(pk, Type::Incoming, 2);
    detail::pack_bin(pk, f.token);
    detail::pack_bin(pk, f.from.bytes);
  }
  void operator()(const ErrorFrame& f) {
    begin(pk, Type::Error, 3);
    pk.pack(f.id);
    pk.pack(static_cast<std::uint32_t>(f.code));
    pk.pack(f.message);
  }
};

std::optional<std::uint32_t> u32(const FieldReader& r, std::size_t i) {
  auto v = r.uint(i);
  if (!v || *v > UINT32_MAX) return std::nullopt;
  return static_cast<std::uint32_t>(*v);
}

// Keys are validated here, so a frame that decodes never carries a path-like key.
std::optional<std::string> key_field(const FieldReader& r, std::size_t i) {
  auto k = r.str(i, AnnexKey::kMaxLength);
  if (!k || !AnnexKey::parse(*k)) return std::nullopt;
  return k;
}

// An annex UUID (or, when allowed, the empty string).
std::optional<NodeId> node_field(const FieldReader& r, std::size_t i) {
  auto b = r.bin(i, 20);
  if (!b || b->size() != 20) return std::nullopt;
  NodeId id;
  std::copy(b->begin(), b->end(), id.bytes.begin());
  return id;
}

std::optional<std::string> uuid_field(const FieldReader& r, std::size_t i, bool allow_empty) {
  auto u = r.str(i, 64);
  if (!u || (u->empty() ? !allow_empty : !is_annex_uuid(*u))) return std::nullopt;
  return u;
}

std::optional<Type> frame_type(const FieldReader& r) {
  auto type = u32(r, 0);
  if (!type) return std::nullopt;
  return static_cast<Type>(*type);
}

Result<DataView> data_fields(const FieldReader& r) {
  bool sized = r.size() == 5;
  auto id = sized ? u32(r, 1) : std::nullopt;
  auto offset = sized ? r.uint(2) : std::nullopt;
  auto fin = sized ? r.boolean(3) : std::nullopt;
  auto bytes = sized ? r.bin(4, kMaxDataBytes) : std::nullopt;
  if (!id || !offset || !fin || !bytes) return r.fail("DATA");
  return DataView{*id, *offset, *fin, *bytes};
}

Result<Frame> decode_fields(const FieldReader& r) {
  auto type = r.uint(0);
  if (!type) return r.fail("type");
  auto want = [&](std::size_t fields) { return r.size() == 1 + fields; };
  switch (static_cast<Type>(*type)) {
    case Type::Hello: {
      auto version = want(4) ? u32(r, 1) : std::nullopt;
      auto max_frame = want(4) ? u32(r, 2) : std::nullopt;
      auto swarm = want(4) ? r.str(3, 16) : std::nullopt;
      auto agent = want(4) ? r.str(4, 128) : std::nullopt;
      if (!version || !max_frame || !swarm || !agent) return r.fail("HELLO");
      return Frame{Hello{*version, *max_frame, *swarm, *agent}};
    }
    case Type::Proof: {
      auto mac = want(1) ? r.bin(1, 32) : std::nullopt;
      if (!mac || mac->size() != 32) return r.fail("PROOF");
      return Frame{Proof{Bytes(mac->begin(), mac->end())}};
    }
    case Type::Have: {
      auto id = want(3) ? u32(r, 1) : std::nullopt;
      auto repo = want(3) ? uuid_field(r, 3, true) : std::nullopt;
      if (!id || !repo || r.at(2).type != msgpack::type::ARRAY || r.at(2).via.array.size > kMaxHaveKeys)
        return r.fail("HAVE");
      FieldReader keys(r.at(2), "HAVE key list");
      Have have{*id, {}, *repo};
      for (std::size_t i = 0; i < keys.size(); ++i) {
        auto k = key_field(keys, i);
        if (!k) return r.fail("HAVE key");
        have.keys.push_back(*k);
      }
      return Frame{std::move(have)};
    }
    case Type::HaveReply: {
      auto id = want(2) ? u32(r, 1) : std::nullopt;
      if (!id || r.at(2).type != msgpack::type::ARRAY || r.at(2).via.array.size > kMaxHaveKeys)
        return r.fail("HAVE reply");
      FieldReader sizes(r.at(2), "HAVE reply");
      HaveReply reply{*id, {}};
      for (std::size_t i = 0; i < sizes.size(); ++i) {
        auto s = sizes.uint(i);
        if (!s) return r.fail("HAVE reply size");
        reply.sizes.push_back(*s);
      }
      return Frame{std::move(reply)};
    }
    case Type::Manifest: {
      auto id = want(2) ? u32(r, 1) : std::nullopt;
      auto key = want(2) ? key_field(r, 2) : std::nullopt;
      if (!id || !key) return r.fail("MANIFEST");
      return Frame{Manifest{*id, *key}};
    }
    case Type::ManifestReply: {
      auto id = want(4) ? u32(r, 1) : std::nullopt;
      auto chunk = want(4) ? u32(r, 2) : std::nullopt;
      auto size = want(4) ? r.uint(3) : std::nullopt;
      auto hashes = want(4) ? r.bin(4, kMaxManifestChunks * 32) : std::nullopt;
      if (!id || !chunk || *chunk == 0 || !size || !hashes || hashes->size() % 32 != 0)
        return r.fail("MANIFEST reply");
      // The hash count must be exactly what size and chunk size imply.
      auto chunks = (*size + *chunk - 1) / *chunk;
      if (chunks != hashes->size() / 32) return r.fail("MANIFEST reply (chunk count)");
      return Frame{ManifestReply{*id, *chunk, *size, Bytes(hashes->begin(), hashes->end())}};
    }
    case Type::Get: {
      auto id = want(4) ? u32(r, 1) : std::nullopt;
      auto key = want(4) ? key_field(r, 2) : std::nullopt;
      auto offset = want(4) ? r.uint(3) : std::nullopt;
      auto length = want(4) ? r.uint(4) : std::nullopt;
      if (!id || !key || !offset || !length || *length == 0) return r.fail("GET");
      if (*offset > UINT64_MAX - *length) return r.fail("GET range");
      return Frame{Get{*id, *key, *offset, *length}};
    }
    case Type::Data: {
      auto d = data_fields(r);
      if (!d) return Error{d.error()};
      return Frame{Data{d->id, d->offset, d->fin, Bytes(d->bytes.begin(), d->bytes.end())}};
    }
    case Type::Remove: {
      auto id = want(3) ? u32(r, 1) : std::nullopt;
      auto key = want(3) ? key_field(r, 2) : std::nullopt;
      auto store = want(3) ? uuid_field(r, 3, false) : std::nullopt;
      if (!id || !key || !store) return r.fail("REMOVE");
      return Frame{Remove{*id, *key, *store}};
    }
    case Type::Cancel: {
      auto id = want(1) ? u32(r, 1) : std::nullopt;
      if (!id) return r.fail("CANCEL");
      return Frame{Cancel{*id}};
    }
    case Type::Ping:
    case Type::Pong: {
      auto nonce = want(1) ? r.uint(1) : std::nullopt;
      if (!nonce) return r.fail("PING");
      if (static_cast<Type>(*type) == Type::Ping) return Frame{Ping{*nonce}};
      return Frame{Pong{*nonce}};
    }
    case Type::DialBack: {
      auto id = want(3) ? u32(r, 1) : std::nullopt;
      auto host = want(3) ? r.str(2, kMaxAddressText) : std::nullopt;
      auto port = want(3) ? r.uint(3) : std::nullopt;
      if (!id || !host || !port || *port == 0 || *port > 65535) return r.fail("DIAL_BACK");
      if (!host->empty() && !is_ip_literal(*host)) return r.fail("DIAL_BACK host");
      return Frame{DialBack{*id, *host, static_cast<std::uint16_t>(*port)}};
    }
    case Type::DialBackReply: {
      auto id = want(4) ? u32(r, 1) : std::nullopt;
      auto ok = want(4) ? r.boolean(2) : std::nullopt;
      auto observed = want(4) ? r.str(3, kMaxAddressText) : std::nullopt;
      auto reason = want(4) ? r.str(4, kMaxReasonText) : std::nullopt;
      if (!id || !ok || !observed || !reason) return r.fail("DIAL_BACK reply");
      if (!observed->empty() && !is_ip_literal(*observed)) return r.fail("DIAL_BACK reply address");
      return Frame{DialBackReply{*id, *ok, *observed, *reason}};
    }
    case Type::Reserve: {
      auto id = want(1) ? u32(r, 1) : std::nullopt;
      if (!id) return r.fail("RESERVE");
      return Frame{Reserve{*id}};
    }
    case Type::ReserveReply: {
      auto id = want(4) ? u32(r, 1) : std::nullopt;
      auto ok = want(4) ? r.boolean(2) : std::nullopt;
      auto ttl = want(4) ? u32(r, 3) : std::nullopt;
      auto reason = want(4) ? r.str(4, kMaxReasonText) : std::nullopt;
      if (!id || !ok || !ttl || !reason) return r.fail("RESERVE reply");
      return Frame{ReserveReply{*id, *ok, *ttl, *reason}};
    }
    case Type::Connect: {
      auto id = want(2) ? u32(r, 1) : std::nullopt;
      auto target = want(2) ? node_field(r, 2) : std::nullopt;
      if (!id || !target) return r.fail("CONNECT");
      return Frame{Connect{*id, *target}};
    }
    case Type::ConnectReply: {
      auto id = want(4) ? u32(r, 1) : std::nullopt;
      auto ok = want(4) ? r.boolean(2) : std::nullopt;
      auto token = want(4) ? r.bin(3, kCircuitToken) : std::nullopt;
      auto reason = want(4) ? r.str(4, kMaxReasonText) : std::nullopt;
      if (!id || !ok || !token || !reason || (*ok && token->size() != kCircuitToken)) return r.fail("CONNECT reply");
      return Frame{ConnectReply{*id, *ok, Bytes(token->begin(), token->end()), *reason}};
    }
    case Type::Incoming: {
      auto token = want(2) ? r.bin(1, kCircuitToken) : std::nullopt;
      auto from = want(2) ? node_field(r, 2) : std::nullopt;
      if (!token || token->size() != kCircuitToken || !from) return r.fail("INCOMING");
      return Frame{Incoming{Bytes(token->begin(), token->end()), *from}};
    }
    case Type::Error: {
      auto id = want(3) ? u32(r, 1) : std::nullopt;
      auto code = want(3) ? u32(r, 2) : std::nullopt;
      auto message = want(3) ? r.str(3, kMaxReasonText) : std::nullopt;
      if (!id || !code || !message) return r.fail("ERROR");
      return Frame{ErrorFrame{*id, static_cast<ErrorCode>(*code), *message}};
    }
  }
  return Error{"unknown frame type " + std::to_string(*type)};
}

}  // namespace

Bytes membership_mac(const SwarmToken& swarm, ByteView exporter, Role role) {
  Bytes input{static_cast<std::uint8_t>(role)};
  input.insert(input.end(), exporter.begin(), exporter.end());
  auto mac = crypto::hmac_sha256(swarm.record_key(), input);
  return Bytes(mac.begin(), mac.end());
}

Bytes encode_frame(const Frame& frame) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  std::visit(Encoder{pk}, frame);
  Bytes out(4 + buf.size());
  put_length(out.data(), buf.size());
  std::copy_n(reinterpret_cast<const std::uint8_t*>(buf.data()), buf.size(), out.begin() + 4);
  return out;
}

Result<FrameView> decode_frame_body_view(ByteView body) {
  if (body.size() > kMaxFrame) return Error{"frame is oversized"};
  return detail::unpack_array<FrameView>(body, kFrameLimits, "frame", [](const FieldReader& r) -> Result<FrameView> {
    if (frame_type(r) == Type::Data) {
      auto d = data_fields(r);
      if (!d) return Error{d.error()};
      return FrameView{*d};
    }
    auto f = decode_fields(r);
    if (!f) return Error{f.error()};
    return FrameView{std::move(*f)};
  });
}

Bytes encode_data_header(std::uint32_t id, std::uint64_t offset, bool fin, std::size_t payload) {
  msgpack::sbuffer buf(kMaxDataHeader);
  Packer pk(buf);
  data_header(pk, id, offset, fin, payload);
  Bytes out(4 + buf.size());
  put_length(out.data(), buf.size() + payload);
  std::copy_n(reinterpret_cast<const std::uint8_t*>(buf.data()), buf.size(), out.begin() + 4);
  return out;
}

Result<Frame> decode_frame_body(ByteView body) {
  if (body.size() > kMaxFrame) return Error{"frame is oversized"};
  return detail::unpack_array<Frame>(body, kFrameLimits, "frame", decode_fields);
}

void FrameReader::feed(ByteView bytes) {
  if (failed_) return;
  // Drop what was consumed before growing, so the buffer stays about one frame long.
  if (consumed_ > 0) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(consumed_));
    consumed_ = 0;
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

std::optional<Result<ByteView>> FrameReader::next() {
  if (failed_) return std::nullopt;
  if (buffer_.size() - consumed_ < 4) return std::nullopt;
  const auto* p = buffer_.data() + consumed_;
  std::uint32_t n = static_cast<std::uint32_t>(p[0]) << 24 | static_cast<std::uint32_t>(p[1]) << 16 |
                    static_cast<std::uint32_t>(p[2]) << 8 | p[3];
  if (n > kMaxFrame || n == 0) {
    failed_ = true;
    return Result<ByteView>(Error{"frame length " + std::to_string(n) + " is outside 1.." +
                               std::to_string(kMaxFrame)});
  }
  if (buffer_.size() - consumed_ - 4 < n) return std::nullopt;
  consumed_ += 4 + n;
  return Result<ByteView>(ByteView(p + 4, n));
}

}  // namespace annexswarm::peer
