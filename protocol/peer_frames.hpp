#pragma once
// The peer protocol's frames (see DESIGN.md, "Peer transport"). After the TLS handshake
// both sides send HELLO, then PROOF (membership, bound to the TLS session); then the
// dialer sends requests, each with an id, and the server answers with frames carrying
// the same id:
//   HAVE {id, keys, repo}      -> HAVE_REPLY {id, sizes (0 = absent, else size + 1)}
//                                 (repo: only count copies in that repository or swarm
//                                 store, by annex UUID; empty: anywhere on the node)
//   MANIFEST {id, key}         -> MANIFEST_REPLY {id, chunk_size, chunk hashes}
//   GET {id, key, offset, len} -> DATA {id, offset, bytes}... (the last one has fin)
//   CANCEL {id}                   stops a GET early
//   REMOVE {id, key, store}    -> HAVE_REPLY {id, [0]} once the key is gone from that
//                                 swarm store (annex repositories are never touched)
//   PING {nonce}               -> PONG {nonce}
//   DIAL_BACK {id, host, port} -> DIAL_BACK_REPLY {id, ok, observed, reason}: the server
//                                 dials host:port (empty host: the address it sees the
//                                 asker at), expects the asker's node id and a membership
//                                 proof there, and says whether that worked and at which
//                                 address it sees the asker (NAT reachability)
//   RESERVE {id}               -> RESERVE_REPLY {id, ok, ttl, reason}: a relay holds a
//                                 reservation for the asker while this link lives and
//                                 RESERVE comes again within ttl seconds; it then sends
//                                 INCOMING {token, from} on this link for each circuit
//   CONNECT {id, target}       -> CONNECT_REPLY {id, ok, token, reason}: a circuit to the
//                                 reserved node `target` through this relay
//   A circuit: both ends open a plain TCP connection to the relay and send
//   kCircuitMagic + the 32-byte token; the relay joins the two and copies bytes. The
//   ends then run TLS and HELLO/PROOF between themselves, so the relay sees ciphertext.
//   any request                -> ERROR {id, code, message} when it cannot be served
// On the wire a frame is a 4-byte big-endian length, then that many bytes of msgpack
// [type, fields...]. A length over kMaxFrame is an error before anything is parsed.
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "protocol/bytes.hpp"
#include "protocol/result.hpp"
#include "protocol/swarm_token.hpp"

namespace annexswarm::peer {

inline constexpr std::uint32_t kPeerProtocolVersion = 1;
inline constexpr std::size_t kMaxDataBytes = 256 * 1024;  // payload of one DATA frame
inline constexpr std::size_t kMaxFrame = kMaxDataBytes + 1024;
inline constexpr std::size_t kMaxHaveKeys = 256;
inline constexpr std::size_t kMaxAddressText = 64;
inline constexpr std::size_t kCircuitToken = 32;
inline constexpr std::string_view kCircuitMagic = "ASRC";  // not a TLS record's first bytes
inline constexpr std::size_t kMaxReasonText = 512;
inline constexpr std::size_t kMaxManifestChunks = 65536;  // with 1 MiB chunks: 64 GiB objects

enum class ErrorCode : std::uint32_t {
  BadFrame = 1,      // malformed or oversized frame; the connection closes
  NotMember = 2,     // no valid membership proof
  BadKey = 3,        // not a valid annex key
  NotPresent = 4,    // the key is not held here
  BadRange = 5,      // offset/length outside the object
  Busy = 6,          // too many peers or requests; retry later
  Unsupported = 7,   // unknown request type or protocol version
  Internal = 8,
};

struct Hello {
  std::uint32_t version = kPeerProtocolVersion;
  std::uint32_t max_frame = kMaxFrame;
  std::string swarm;  // SwarmToken::id(): which secret the PROOF that follows uses
  std::string agent;
  friend bool operator==(const Hello&, const Hello&) = default;
};
struct Proof {
  Bytes mac;  // 32 bytes: HMAC over the TLS session's exporter value
  friend bool operator==(const Proof&, const Proof&) = default;
};
struct Have {
  std::uint32_t id = 0;
  std::vector<std::string> keys;
  std::string repo;  // annex UUID, or empty
  friend bool operator==(const Have&, const Have&) = default;
};
struct HaveReply {
  std::uint32_t id = 0;
  std::vector<std::uint64_t> sizes;
  friend bool operator==(const HaveReply&, const HaveReply&) = default;
};
struct Manifest {
  std::uint32_t id = 0;
  std::string key;
  friend bool operator==(const Manifest&, const Manifest&) = default;
};
struct ManifestReply {
  std::uint32_t id = 0;
  std::uint32_t chunk_size = 0;
  std::uint64_t object_size = 0;
  Bytes hashes;  // 32 bytes (SHA-256) per chunk
  friend bool operator==(const ManifestReply&, const ManifestReply&) = default;
};
struct Get {
  std::uint32_t id = 0;
  std::string key;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  friend bool operator==(const Get&, const Get&) = default;
};
struct Data {
  std::uint32_t id = 0;
  std::uint64_t offset = 0;
  bool fin = false;
  Bytes bytes;
  friend bool operator==(const Data&, const Data&) = default;
};
struct Remove {
  std::uint32_t id = 0;
  std::string key;
  std::string store;  // the swarm store's annex UUID
  friend bool operator==(const Remove&, const Remove&) = default;
};
struct Cancel {
  std::uint32_t id = 0;
  friend bool operator==(const Cancel&, const Cancel&) = default;
};
struct Ping {
  std::uint64_t nonce = 0;
  friend bool operator==(const Ping&, const Ping&) = default;
};
struct Pong {
  std::uint64_t nonce = 0;
  friend bool operator==(const Pong&, const Pong&) = default;
};
struct DialBack {
  std::uint32_t id = 0;
  std::string host;  // an IP literal, or empty: the address the asker is seen at
  std::uint16_t port = 0;
  friend bool operator==(const DialBack&, const DialBack&) = default;
};
struct DialBackReply {
  std::uint32_t id = 0;
  bool ok = false;
  std::string observed;  // the asker's address as this node sees it (IP literal)
  std::string reason;    // why the dial failed; empty when ok
  friend bool operator==(const DialBackReply&, const DialBackReply&) = default;
};
struct Reserve {
  std::uint32_t id = 0;
  friend bool operator==(const Reserve&, const Reserve&) = default;
};
struct ReserveReply {
  std::uint32_t id = 0;
  bool ok = false;
  std::uint32_t ttl = 0;  // seconds: send RESERVE again before this
  std::string reason;
  friend bool operator==(const ReserveReply&, const ReserveReply&) = default;
};
struct Connect {
  std::uint32_t id = 0;
  NodeId target;
  friend bool operator==(const Connect&, const Connect&) = default;
};
struct ConnectReply {
  std::uint32_t id = 0;
  bool ok = false;
  Bytes token;  // kCircuitToken bytes when ok
  std::string reason;
  friend bool operator==(const ConnectReply&, const ConnectReply&) = default;
};
struct Incoming {
  Bytes token;
  NodeId from;
  friend bool operator==(const Incoming&, const Incoming&) = default;
};
struct ErrorFrame {
  std::uint32_t id = 0;
  ErrorCode code = ErrorCode::Internal;
  std::string message;
  friend bool operator==(const ErrorFrame&, const ErrorFrame&) = default;
};

using Frame = std::variant<Hello, Proof, Have, HaveReply, Manifest, ManifestReply, Get, Data, Cancel,
                           Ping, Pong, ErrorFrame, Remove, DialBack, DialBackReply, Reserve, ReserveReply,
                           Connect, ConnectReply, Incoming>;

// Proof of swarm membership bound to one TLS session: HMAC under the swarm secret of
// the session's RFC 5705 exporter value. The role is mixed in so a peer cannot reflect
// our own proof back at us.
enum class Role : std::uint8_t { Dialer = 1, Listener = 2 };
inline constexpr std::string_view kExporterLabel = "EXPORTER-annex-swarm-membership";
Bytes membership_mac(const SwarmToken& swarm, ByteView exporter, Role role);

// The whole frame: length prefix and body.
Bytes encode_frame(const Frame& frame);
// Everything of a DATA frame up to its payload (length prefix included): a sender
// writes this, then the payload bytes straight from where they are, without copying
// them into a frame. At most kMaxDataHeader bytes.
inline constexpr std::size_t kMaxDataHeader = 32;
Bytes encode_data_header(std::uint32_t id, std::uint64_t offset, bool fin, std::size_t payload);
// The body only (what follows the length prefix).
Result<Frame> decode_frame_body(ByteView body);
// The same, but a DATA frame's payload is not copied: `bytes` points into `body`.
struct DataView {
  std::uint32_t id = 0;
  std::uint64_t offset = 0;
  bool fin = false;
  ByteView bytes;
};
using FrameView = std::variant<DataView, Frame>;
Result<FrameView> decode_frame_body_view(ByteView body);

// Splits a byte stream into frame bodies. Feed it what the socket returns; take the
// bodies out with next(). A length over the cap is an error, reported once.
class FrameReader {
public:
  void feed(ByteView bytes);
  // A complete body, nothing when more bytes are needed, or an error. The view is valid
  // until the next call to feed() or next().
  std::optional<Result<ByteView>> next();

private:
  Bytes buffer_;
  std::size_t consumed_ = 0;
  bool failed_ = false;
};

}  // namespace annexswarm::peer
