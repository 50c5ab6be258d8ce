#pragma once
// One end of a tunnel (issue 18): a peer link given over to one OPENed stream, joined to a
// local byte stream (the TCP connection to the service a node exposes, or the connection of
// `annex-swarm connect` on the other side). Bytes read on one side go out on the other:
//  - back-pressure both ways: the local side is read only while the link has less than
//    kMaxUnsent bytes waiting to go, and the link is read only once what it brought is
//    written locally, so a slow reader never makes a node buffer without bound;
//  - half-close passed on: end of file on the local side goes out as STREAM fin, and a
//    STREAM fin from the peer shuts down the local side for sending (ssh and git rely on it);
//  - an idle deadline: no byte either way for that long ends the tunnel;
//  - it ends cleanly once both halves are closed, and at the first error otherwise (a broken
//    link, an ERROR from the peer, a local error), closing both sides; `done` hears which.
//
// A local side that is `annex-swarm connect` (Framing::Records) must also learn whether the
// far side finished or the tunnel broke, which end of file alone cannot say. Toward it the
// bytes go as records, a 4-byte big-endian length and that many bytes; length 0 is the far
// side's fin, and kBrokeRecord followed by a record of the reason is a broken tunnel. What
// the local side sends stays plain bytes.
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "transfer/peer_link.hpp"

namespace annexswarm {

class Tunnel : public std::enable_shared_from_this<Tunnel> {
public:
  static constexpr std::size_t kMaxUnsent = 1u << 20;
  static constexpr std::size_t kReadSize = peer::kMaxDataBytes;  // one STREAM frame's most
  using Clock = std::chrono::steady_clock;
  using LocalSocket = asio::generic::stream_protocol::socket;
  // Empty: both halves closed cleanly; else why the tunnel ended early.
  using Done = std::function<void(std::optional<std::string> error)>;
  enum class Framing { Plain, Records };
  static constexpr std::uint32_t kBrokeRecord = 0xffffffffu;

  Tunnel(asio::io_context& io, std::shared_ptr<PeerLink> link, LocalSocket local, std::chrono::milliseconds idle,
         Done done, Framing framing = Framing::Plain);
  void start();
  // Ends it now (both sides closed), e.g. when the node stops.
  void close(const std::string& why);

  std::uint64_t bytes_to_peer() const { return to_peer_; }
  std::uint64_t bytes_from_peer() const { return from_peer_; }
  bool ended() const { return ended_; }

private:
  void read_local();
  void read_link();
  void write_local(ByteView bytes, bool fin);
  void half_closed();
  void end(std::optional<std::string> error);
  void close_local();
  void watch_idle();

  asio::io_context& io_;
  std::shared_ptr<PeerLink> link_;
  LocalSocket local_;
  std::chrono::milliseconds idle_;
  Done done_;
  Framing framing_;
  asio::steady_timer idle_timer_;
  Clock::time_point last_activity_;
  // Read into the middle: the STREAM frame's header goes in front and its trailer behind, so
  // the bytes go out as they were read.
  std::array<std::uint8_t, peer::kMaxStreamHeader + kReadSize + 1> buffer_{};
  bool local_done_ = false;  // the local side reached end of file (our fin is on its way)
  bool fin_sent_ = false;    // ... and our fin went out
  bool peer_done_ = false;   // the peer's fin arrived and the local side was shut for sending
  bool ended_ = false;
  bool local_writing_ = false;       // a write to the local side is under way
  std::optional<std::string> broke_;  // why, still to be told to the local side (Records)
  std::uint64_t to_peer_ = 0, from_peer_ = 0;
};

}  // namespace annexswarm
