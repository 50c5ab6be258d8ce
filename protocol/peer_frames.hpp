#pragma once
// The peer protocol's frames (see DESIGN.md, "Peer transport"). After the TLS handshake
// both sides send HELLO, then PROOF (membership, bound to the TLS session); then the
// dialer sends requests, each with an id, and the server answers with frames carrying
// the same id:
//   HAVE {id, keys, repo}      -> HAVE_REPLY {id, sizes (0 = absent, else size + 1)}
//                                 (repo: only count copies in that repository or swarm
//                                 store, by annex UUID; empty: anywhere on the node)
//   MANIFEST {id, key, page}   -> MANIFEST_REPLY {id, chunk_size, object_size, root, page,
//                                 hashes}: the SHA-256 of each chunk of one page (up to
//                                 kManifestPageChunks chunks); root = SHA-256 over every
//                                 chunk hash, so peers that hold the same bytes name the
//                                 same root, and an object of any size needs no large frame
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
//   any request                -> ERROR {id, code, message, retry_after_ms} when it cannot
//                                 be served; Busy says when to ask again (a node at its
//                                 peer cap, or a seeder still hashing the object)
// On the wire a frame is a 4-byte big-endian length, then that many bytes of msgpack
// [type, fields...]. A length over kMaxFrame is an error before anything is parsed.
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "protocol/bytes.hpp"
#include "protocol/frame_fields.hpp"
#include "protocol/result.hpp"
#include "protocol/swarm_token.hpp"

namespace annexswarm::peer {

inline constexpr std::uint32_t kPeerProtocolVersion = 2;
inline constexpr std::size_t kMaxDataBytes = 256 * 1024;  // payload of one DATA frame
inline constexpr std::size_t kMaxFrame = kMaxDataBytes + 1024;
inline constexpr std::size_t kMaxHaveKeys = 256;
inline constexpr std::size_t kMaxAddressText = 64;
inline constexpr std::size_t kCircuitToken = 32;
inline constexpr std::string_view kCircuitMagic = "ASRC";  // not a TLS record's first bytes
inline constexpr std::size_t kMaxReasonText = 512;
inline constexpr std::uint32_t kManifestChunk = 1024 * 1024;   // bytes per chunk
inline constexpr std::uint32_t kManifestPageChunks = 4096;     // chunk hashes per MANIFEST reply (128 KiB)

enum class ErrorCode : std::uint32_t {
  BadFrame = 1,      // malformed or oversized frame; the connection closes
  NotMember = 2,     // no valid membership proof
  BadKey = 3,        // not a valid annex key
  NotPresent = 4,    // the key is not held here
  BadRange = 5,      // offset/length outside the object
  Busy = 6,          // too many peers or requests; retry later
  Unsupported = 7,   // unknown request type or protocol version
  Internal = 8,
  NotAllowed = 9,    // the request needs a power the asker did not show (a store's write capability)
};

// Each frame: its fields, then its wire definition (type number, name, fields in wire
// order with their bounds; see frame_fields.hpp). Adding a frame is a struct, its spec,
// its place in `Frame` below, and a handler.
struct Hello {
  std::uint32_t version = kPeerProtocolVersion;
  std::uint32_t max_frame = kMaxFrame;
  std::string swarm;  // SwarmToken::id(): which secret the PROOF that follows uses
  std::string agent;
  friend bool operator==(const Hello&, const Hello&) = default;
};
template <> inline constexpr auto kSpec<Hello> =
    spec<Hello>(1, "HELLO", field(&Hello::version), field(&Hello::max_frame), field(&Hello::swarm, rule::Text{16}),
                field(&Hello::agent, rule::Text{128}));

struct Proof {
  Bytes mac;  // 32 bytes: HMAC over the TLS session's exporter value
  friend bool operator==(const Proof&, const Proof&) = default;
};
template <> inline constexpr auto kSpec<Proof> = spec<Proof>(2, "PROOF", field(&Proof::mac, rule::Blob{32, 32}));

struct Have {
  std::uint32_t id = 0;
  std::vector<std::string> keys;
  std::string repo;  // annex UUID, or empty
  friend bool operator==(const Have&, const Have&) = default;
};
template <> inline constexpr auto kSpec<Have> =
    spec<Have>(3, "HAVE", field(&Have::id), field(&Have::keys, rule::KeyList{kMaxHaveKeys}),
               field(&Have::repo, rule::Uuid{true}));

struct HaveReply {
  std::uint32_t id = 0;
  std::vector<std::uint64_t> sizes;
  friend bool operator==(const HaveReply&, const HaveReply&) = default;
};
template <> inline constexpr auto kSpec<HaveReply> =
    spec<HaveReply>(4, "HAVE reply", field(&HaveReply::id), field(&HaveReply::sizes, rule::UintList{kMaxHaveKeys}));

struct Manifest {
  std::uint32_t id = 0;
  std::string key;
  std::uint32_t page = 0;
  friend bool operator==(const Manifest&, const Manifest&) = default;
};
template <> inline constexpr auto kSpec<Manifest> =
    spec<Manifest>(5, "MANIFEST", field(&Manifest::id), field(&Manifest::key, rule::Key{}), field(&Manifest::page));

struct ManifestReply {
  std::uint32_t id = 0;
  std::uint32_t chunk_size = 0;
  std::uint64_t object_size = 0;
  Bytes root;  // SHA-256 over every chunk hash of the object
  std::uint32_t page = 0;
  Bytes hashes;  // 32 bytes (SHA-256) per chunk of this page
  friend bool operator==(const ManifestReply&, const ManifestReply&) = default;
};
template <> inline constexpr auto kSpec<ManifestReply> =
    spec<ManifestReply>(6, "MANIFEST reply", field(&ManifestReply::id), field(&ManifestReply::chunk_size),
                        field(&ManifestReply::object_size), field(&ManifestReply::root, rule::Blob{32, 32}),
                        field(&ManifestReply::page),
                        field(&ManifestReply::hashes, rule::Blob{std::size_t{kManifestPageChunks} * 32}));
// The page exists, and holds exactly the hashes that size, chunk size and page imply.
const char* check(const ManifestReply& f);
// Chunks of an object, and manifest pages it takes (at least one, for an empty object).
std::uint64_t chunk_count(std::uint64_t object_size, std::uint32_t chunk_size);
std::uint64_t page_count(std::uint64_t object_size, std::uint32_t chunk_size);

struct Get {
  std::uint32_t id = 0;
  std::string key;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  friend bool operator==(const Get&, const Get&) = default;
};
template <> inline constexpr auto kSpec<Get> = spec<Get>(7, "GET", field(&Get::id), field(&Get::key, rule::Key{}),
                                                         field(&Get::offset), field(&Get::length));
const char* check(const Get& f);  // a non-empty range that does not wrap around

struct Data {
  std::uint32_t id = 0;
  std::uint64_t offset = 0;
  bool fin = false;
  Bytes bytes;
  friend bool operator==(const Data&, const Data&) = default;
};
// DATA as a view: `bytes` points into the frame (decode_frame_body_view).
struct DataView {
  std::uint32_t id = 0;
  std::uint64_t offset = 0;
  bool fin = false;
  ByteView bytes;
};
template <class D>
constexpr auto data_spec() {
  return spec<D>(8, "DATA", field(&D::id), field(&D::offset), field(&D::fin), field(&D::bytes, rule::Blob{kMaxDataBytes}));
}
template <> inline constexpr auto kSpec<Data> = data_spec<Data>();
template <> inline constexpr auto kSpec<DataView> = data_spec<DataView>();

struct Cancel {
  std::uint32_t id = 0;
  friend bool operator==(const Cancel&, const Cancel&) = default;
};
template <> inline constexpr auto kSpec<Cancel> = spec<Cancel>(9, "CANCEL", field(&Cancel::id));

struct Ping {
  std::uint64_t nonce = 0;
  friend bool operator==(const Ping&, const Ping&) = default;
};
template <> inline constexpr auto kSpec<Ping> = spec<Ping>(10, "PING", field(&Ping::nonce));

struct Pong {
  std::uint64_t nonce = 0;
  friend bool operator==(const Pong&, const Pong&) = default;
};
template <> inline constexpr auto kSpec<Pong> = spec<Pong>(11, "PONG", field(&Pong::nonce));

struct ErrorFrame {
  std::uint32_t id = 0;
  ErrorCode code = ErrorCode::Internal;
  std::string message;
  std::uint32_t retry_after_ms = 0;  // Busy: when to ask again
  friend bool operator==(const ErrorFrame&, const ErrorFrame&) = default;
};
template <> inline constexpr auto kSpec<ErrorFrame> =
    spec<ErrorFrame>(12, "ERROR", field(&ErrorFrame::id), field(&ErrorFrame::code),
                     field(&ErrorFrame::message, rule::Text{kMaxReasonText}), field(&ErrorFrame::retry_after_ms));

struct Remove {
  std::uint32_t id = 0;
  std::string key;
  std::string store;  // the swarm store's annex UUID
  Bytes capability;   // the store's write capability (SwarmToken::store_capability)
  friend bool operator==(const Remove&, const Remove&) = default;
};
template <> inline constexpr auto kSpec<Remove> =
    spec<Remove>(13, "REMOVE", field(&Remove::id), field(&Remove::key, rule::Key{}),
                 field(&Remove::store, rule::Uuid{false}), field(&Remove::capability, rule::Blob{32, 32}));

struct DialBack {
  std::uint32_t id = 0;
  std::string host;  // an IP literal, or empty: the address the asker is seen at
  std::uint16_t port = 0;
  friend bool operator==(const DialBack&, const DialBack&) = default;
};
template <> inline constexpr auto kSpec<DialBack> =
    spec<DialBack>(14, "DIAL_BACK", field(&DialBack::id), field(&DialBack::host, rule::IpOrEmpty{}),
                   field(&DialBack::port));
const char* check(const DialBack& f);  // port 0 is no port

struct DialBackReply {
  std::uint32_t id = 0;
  bool ok = false;
  std::string observed;  // the asker's address as this node sees it (IP literal)
  std::string reason;    // why the dial failed; empty when ok
  friend bool operator==(const DialBackReply&, const DialBackReply&) = default;
};
template <> inline constexpr auto kSpec<DialBackReply> =
    spec<DialBackReply>(15, "DIAL_BACK reply", field(&DialBackReply::id), field(&DialBackReply::ok),
                        field(&DialBackReply::observed, rule::IpOrEmpty{}),
                        field(&DialBackReply::reason, rule::Text{kMaxReasonText}));

struct Reserve {
  std::uint32_t id = 0;
  friend bool operator==(const Reserve&, const Reserve&) = default;
};
template <> inline constexpr auto kSpec<Reserve> = spec<Reserve>(16, "RESERVE", field(&Reserve::id));

struct ReserveReply {
  std::uint32_t id = 0;
  bool ok = false;
  std::uint32_t ttl = 0;  // seconds: send RESERVE again before this
  std::string reason;
  friend bool operator==(const ReserveReply&, const ReserveReply&) = default;
};
template <> inline constexpr auto kSpec<ReserveReply> =
    spec<ReserveReply>(17, "RESERVE reply", field(&ReserveReply::id), field(&ReserveReply::ok),
                       field(&ReserveReply::ttl), field(&ReserveReply::reason, rule::Text{kMaxReasonText}));

struct Connect {
  std::uint32_t id = 0;
  NodeId target;
  friend bool operator==(const Connect&, const Connect&) = default;
};
template <> inline constexpr auto kSpec<Connect> =
    spec<Connect>(18, "CONNECT", field(&Connect::id), field(&Connect::target));

struct ConnectReply {
  std::uint32_t id = 0;
  bool ok = false;
  Bytes token;  // kCircuitToken bytes when ok
  std::string reason;
  friend bool operator==(const ConnectReply&, const ConnectReply&) = default;
};
template <> inline constexpr auto kSpec<ConnectReply> =
    spec<ConnectReply>(19, "CONNECT reply", field(&ConnectReply::id), field(&ConnectReply::ok),
                       field(&ConnectReply::token, rule::Blob{kCircuitToken}),
                       field(&ConnectReply::reason, rule::Text{kMaxReasonText}));
const char* check(const ConnectReply& f);  // a yes carries a whole token

struct Incoming {
  Bytes token;
  NodeId from;
  friend bool operator==(const Incoming&, const Incoming&) = default;
};
template <> inline constexpr auto kSpec<Incoming> =
    spec<Incoming>(20, "INCOMING", field(&Incoming::token, rule::Blob{kCircuitToken, kCircuitToken}),
                   field(&Incoming::from));

// PROVE: does the holder have the object's bytes, not only its name? The asker picks a
// fresh nonce and ranges of the object it holds itself; the holder answers prove_mac() over
// those ranges of its copy, which only a holder of the bytes can compute. A HAVE that
// says "yes" counts for nothing before git-annex drops a copy; a PROVE that matches does.
inline constexpr std::size_t kMaxProveRanges = 16;
inline constexpr std::uint64_t kMaxProveRange = 64 * 1024;
struct Prove {
  std::uint32_t id = 0;
  std::string key;
  std::string repo;  // annex UUID (a repository or a swarm store), or empty: any
  Bytes nonce;       // 32 fresh random bytes
  std::vector<std::uint64_t> offsets;
  std::vector<std::uint64_t> lengths;
  friend bool operator==(const Prove&, const Prove&) = default;
};
template <> inline constexpr auto kSpec<Prove> =
    spec<Prove>(21, "PROVE", field(&Prove::id), field(&Prove::key, rule::Key{}), field(&Prove::repo, rule::Uuid{true}),
                field(&Prove::nonce, rule::Blob{32, 32}), field(&Prove::offsets, rule::UintList{kMaxProveRanges}),
                field(&Prove::lengths, rule::UintList{kMaxProveRanges}));
const char* check(const Prove& f);  // one length per offset, each 1..kMaxProveRange, no overflow

struct ProveReply {
  std::uint32_t id = 0;
  std::uint64_t size = 0;  // of the holder's copy
  Bytes mac;               // prove_mac over the ranges asked
  friend bool operator==(const ProveReply&, const ProveReply&) = default;
};
template <> inline constexpr auto kSpec<ProveReply> =
    spec<ProveReply>(22, "PROVE reply", field(&ProveReply::id), field(&ProveReply::size),
                     field(&ProveReply::mac, rule::Blob{32, 32}));

// HMAC-SHA256 under the nonce of the key, then each range's bytes in order.
Bytes prove_mac(ByteView nonce, std::string_view key, ByteView range_bytes);

// TAKE: keep a share of an erasure-coded object in a swarm store. The asker (who encoded
// the object) serves the share; the holder fetches it from the asker, checked against the
// manifest root its key names, keeps it with the object's share map, and answers HAVE
// reply {share size}, or ERROR (NotAllowed: no write capability; Busy: no room now, or too
// many TAKEs at once).
// For a whole object of a replicated store (a key that is no share, `map` then names no
// share map): keep a copy, fetched from the asker, and hand it on to the nodes `map` lists
// (hex node ids, space-separated: the rest of a chain of keepers), serving them the chunks
// in so far while it fetches. Answered at once: HAVE reply {0} (accepted: being fetched)
// or {size + 1} (held already), or ERROR (NotAllowed: no write capability, or not a keeper
// of that store under the rules held; Busy: no room, out of hours, or fetching enough).
inline constexpr std::size_t kMaxShareMapText = 16 * 1024;
struct Take {
  std::uint32_t id = 0;
  std::string key;    // a share key (SWARMSHARE-...)
  std::string store;  // the swarm store's annex UUID
  Bytes capability;   // the store's write capability
  std::string map;    // the object's share map, as ShareMap::text() writes it
  friend bool operator==(const Take&, const Take&) = default;
};
template <> inline constexpr auto kSpec<Take> =
    spec<Take>(23, "TAKE", field(&Take::id), field(&Take::key, rule::Key{}), field(&Take::store, rule::Uuid{false}),
               field(&Take::capability, rule::Blob{32, 32}), field(&Take::map, rule::Text{kMaxShareMapText}));

// OPEN: a byte stream to a service this node's owner exposes (`expose.NAME = HOST:PORT` in
// its config, e.g. ssh), carried on this link, which from then on carries only that
// stream: STREAM frames both ways, each side's last one with fin set (that side's half is
// closed, as TCP's shutdown), until both sides sent fin; an ERROR ends it early. OPEN_REPLY
// says whether the stream is open, or why not (not exposed, the node's tunnel caps, the
// service unreachable).
inline constexpr std::size_t kMaxServiceName = 32;
struct Open {
  std::uint32_t id = 0;
  std::string service;
  friend bool operator==(const Open&, const Open&) = default;
};
template <> inline constexpr auto kSpec<Open> =
    spec<Open>(24, "OPEN", field(&Open::id), field(&Open::service, rule::Text{kMaxServiceName}));
struct OpenReply {
  std::uint32_t id = 0;
  bool ok = false;
  std::string reason;  // why not, when not
  friend bool operator==(const OpenReply&, const OpenReply&) = default;
};
template <> inline constexpr auto kSpec<OpenReply> =
    spec<OpenReply>(25, "OPEN reply", field(&OpenReply::id), field(&OpenReply::ok),
                    field(&OpenReply::reason, rule::Text{kMaxReasonText}));
struct Stream {
  Bytes bytes;
  bool fin = false;  // the sender's half of the stream ends after these bytes
  friend bool operator==(const Stream&, const Stream&) = default;
};
template <> inline constexpr auto kSpec<Stream> =
    spec<Stream>(26, "STREAM", field(&Stream::bytes, rule::Blob{kMaxDataBytes}), field(&Stream::fin));
// STREAM as a view, for a tunnel (decode_tunnel_frame_view).
struct StreamView {
  ByteView bytes;
  bool fin = false;
};
template <> inline constexpr auto kSpec<StreamView> =
    spec<StreamView>(kSpec<Stream>.type, "STREAM", field(&StreamView::bytes, rule::Blob{kMaxDataBytes}),
                     field(&StreamView::fin));
using Frame = std::variant<Hello, Proof, Have, HaveReply, Manifest, ManifestReply, Get, Data, Cancel,
                           Ping, Pong, ErrorFrame, Remove, DialBack, DialBackReply, Reserve, ReserveReply,
                           Connect, ConnectReply, Incoming, Prove, ProveReply, Take, Open, OpenReply, Stream>;

// Proof of swarm membership bound to one TLS session: HMAC under the swarm secret of
// the session's RFC 5705 exporter value. The role is mixed in so a peer cannot reflect
// our own proof back at us.
enum class Role : std::uint8_t { Dialer = 1, Listener = 2 };
inline constexpr std::string_view kExporterLabel = "EXPORTER-annex-swarm-membership";
Bytes membership_mac(const SwarmToken& swarm, ByteView exporter, Role role);

// The whole frame: length prefix and body. A frame whose fields break their rules, or
// whose body would pass kMaxFrame, is an error here: what we send, the peer accepts.
Result<Bytes> encode_frame(const Frame& frame);
// The same without the field rules (the size cap still holds): for tests and fuzz seeds
// that need hostile bytes.
Result<Bytes> encode_frame_unchecked(const Frame& frame);
// The frame's name on the wire ("GET", "MANIFEST reply", ...), for logs and errors.
const char* frame_name(const Frame& frame);
// Everything of a DATA frame up to its payload (length prefix included): a sender
// writes this, then the payload bytes straight from where they are, without copying
// them into a frame. At most kMaxDataHeader bytes.
inline constexpr std::size_t kMaxDataHeader = 32;
Bytes encode_data_header(std::uint32_t id, std::uint64_t offset, bool fin, std::size_t payload);
// STREAM the same way (a tunnel sends what it read where it read it): the header, at most
// kMaxStreamHeader bytes, then the payload, then the one byte of encode_stream_trailer.
inline constexpr std::size_t kMaxStreamHeader = 16;
Bytes encode_stream_header(std::size_t payload);
std::uint8_t encode_stream_trailer(bool fin);
// The body only (what follows the length prefix).
Result<Frame> decode_frame_body(ByteView body);
// The same, but a DATA frame's payload is not copied: `bytes` points into `body`.
using FrameView = std::variant<DataView, Frame>;
Result<FrameView> decode_frame_body_view(ByteView body);
// For a tunnel: STREAM as a view into the frame, any other frame decoded.
using TunnelFrameView = std::variant<StreamView, Frame>;
Result<TunnelFrameView> decode_tunnel_frame_view(ByteView body);

// Splits a byte stream into frame bodies. Either feed it bytes, or let the source write
// straight into space() and commit() what it wrote (no copy); take the bodies out with
// next(). A length over the cap is an error, reported once.
class FrameReader {
public:
  void feed(ByteView bytes);
  // Room for at least `min` bytes after what is buffered. Bytes not yet taken by next()
  // move only when the room would otherwise run out, so a stream of large frames is
  // mostly written once and read in place.
  MutableByteView space(std::size_t min);
  // `n` bytes were written at the start of the last space().
  void commit(std::size_t n);
  // A complete body, nothing when more bytes are needed, or an error. The view is valid
  // until the next call to feed(), space() or next().
  std::optional<Result<ByteView>> next();

private:
  Bytes buffer_;
  std::size_t begin_ = 0;  // [begin_, end_) is buffered and not yet taken
  std::size_t end_ = 0;
  bool failed_ = false;
};

}  // namespace annexswarm::peer
