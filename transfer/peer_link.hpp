#pragma once
// An authenticated link to a swarm member: a TLS stream on which both sides have shown
// their certificate (node id) and proved, bound to this TLS session, that they hold the
// secret of a common swarm. Then it carries peer frames both ways.
//   dialer:   HELLO{swarm id} PROOF{mac}  ->
//   listener:                             <- HELLO PROOF{mac}   (or ERROR NotMember)
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "protocol/peer_frames.hpp"
#include "transfer/tls_stream.hpp"

namespace annexswarm {

class PeerLink : public std::enable_shared_from_this<PeerLink> {
public:
  struct Established {
    NodeId peer;
    std::size_t swarm = 0;  // index into the swarms given
  };

  // Dialer: `swarms` holds the one swarm to use. Listener: every swarm it serves.
  PeerLink(std::shared_ptr<TlsStream> stream, std::vector<SwarmToken> swarms, peer::Role role);

  // Handshake, HELLO and PROOF. A dialer that knows whom it dials passes the node id.
  void establish(std::optional<NodeId> expected_peer, std::function<void(Result<Established>)> done);
  void send(const peer::Frame& frame, std::function<void(Result<bool>)> done = {});
  // Bytes that already are one or more whole encoded frames (the caller may reuse them
  // on return).
  void send_encoded(ByteView frames, std::function<void(Result<bool>)> done = {});
  // The next frame from the peer; an error when the link fails or the peer misbehaves.
  void receive(std::function<void(Result<peer::Frame>)> done);
  // The same, but DATA arrives as a view into the link's buffer, valid during the call.
  void receive_view(std::function<void(Result<peer::FrameView>)> done);
  // For a tunnel: STREAM as a view into the link's buffer, valid until the next receive.
  void receive_tunnel(std::function<void(Result<peer::TunnelFrameView>)> done);
  void close();
  // The member at the other end (once established).
  const NodeId& peer() const { return peer_; }
  std::uint64_t unsent_bytes() const { return stream_->unsent_bytes(); }
  void when_drained(std::function<void()> fn) { stream_->when_drained(std::move(fn)); }
  std::string remote_address() const { return stream_->remote_address(); }
  asio::ip::tcp::endpoint remote_endpoint() const { return stream_->remote_endpoint(); }
  asio::ip::tcp::endpoint local_endpoint() const { return stream_->local_endpoint(); }

private:
  void fail(const std::function<void(Result<Established>)>& done, peer::ErrorCode code, std::string why);
  void send_hello_and_proof(std::size_t swarm);
  Result<Bytes> proof_for(std::size_t swarm, peer::Role role);
  // The next frame body from the stream, decoded by `decode`.
  template <class T>
  void receive_decoded(Result<T> (*decode)(ByteView), std::function<void(Result<T>)> done);

  std::shared_ptr<TlsStream> stream_;
  std::vector<SwarmToken> swarms_;
  peer::Role role_;
  peer::FrameReader reader_;
  NodeId peer_;
};

}  // namespace annexswarm
