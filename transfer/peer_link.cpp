#include "transfer/peer_link.hpp"

#include <gnutls/crypto.h>

namespace annexswarm {
using namespace peer;

namespace {
constexpr std::string_view kAgent = "annex-swarm/" ANNEX_SWARM_VERSION;

bool constant_time_equal(const Bytes& a, const Bytes& b) {
  return a.size() == b.size() && gnutls_memcmp(a.data(), b.data(), a.size()) == 0;
}
}  // namespace

PeerLink::PeerLink(std::shared_ptr<TlsStream> stream, std::vector<SwarmToken> swarms, Role role)
    : stream_(std::move(stream)), swarms_(std::move(swarms)), role_(role) {}

Result<Bytes> PeerLink::proof_for(std::size_t swarm, Role role) {
  auto exporter = stream_->exporter(kExporterLabel, 32);
  if (!exporter) return Error{exporter.error()};
  return membership_mac(swarms_[swarm], *exporter, role);
}

void PeerLink::send_hello_and_proof(std::size_t swarm) {
  send(Hello{kPeerProtocolVersion, static_cast<std::uint32_t>(kMaxFrame), swarms_[swarm].id(), std::string(kAgent)});
  auto mac = proof_for(swarm, role_);
  if (mac) send(Proof{*mac});
}

void PeerLink::fail(const std::function<void(Result<Established>)>& done, ErrorCode code, std::string why) {
  // Tell the peer why, then hang up; the frame may or may not get out.
  auto self = shared_from_this();
  send(ErrorFrame{0, code, why}, [self](Result<bool>) { self->close(); });
  done(Error{std::move(why)});
}

void PeerLink::establish(std::optional<NodeId> expected_peer, std::function<void(Result<Established>)> done) {
  auto self = shared_from_this();
  stream_->handshake([self, expected_peer, done](Result<NodeId> peer) {
    if (!peer) {
      self->close();
      return done(Error{peer.error()});
    }
    self->peer_ = *peer;
    if (expected_peer && *expected_peer != *peer)
      return self->fail(done, ErrorCode::NotMember, "peer is node " + peer->hex() + ", not the node dialled");
    if (self->role_ == Role::Dialer) self->send_hello_and_proof(0);
    // Both roles now read the other side's HELLO, then its PROOF.
    self->receive([self, done](Result<Frame> hello) {
      if (!hello) return self->fail(done, ErrorCode::BadFrame, hello.error());
      if (auto* err = std::get_if<ErrorFrame>(&*hello)) {
        self->close();
        return done(Error{"peer refused: " + err->message});
      }
      auto* h = std::get_if<Hello>(&*hello);
      if (!h) return self->fail(done, ErrorCode::BadFrame, "expected HELLO");
      if (h->version != kPeerProtocolVersion)
        return self->fail(done, ErrorCode::Unsupported, "peer speaks protocol version " + std::to_string(h->version));
      std::optional<std::size_t> swarm;
      for (std::size_t i = 0; i < self->swarms_.size(); ++i)
        if (self->swarms_[i].id() == h->swarm) swarm = i;
      if (!swarm) return self->fail(done, ErrorCode::NotMember, "not a member of swarm " + h->swarm);
      self->receive([self, done, swarm = *swarm](Result<Frame> proof) {
        if (!proof) return self->fail(done, ErrorCode::BadFrame, proof.error());
        auto* p = std::get_if<Proof>(&*proof);
        if (!p) return self->fail(done, ErrorCode::NotMember, "expected PROOF");
        auto peer_role = self->role_ == Role::Dialer ? Role::Listener : Role::Dialer;
        auto expected = self->proof_for(swarm, peer_role);
        if (!expected || !constant_time_equal(*expected, p->mac))
          return self->fail(done, ErrorCode::NotMember, "membership proof does not verify");
        if (self->role_ == Role::Listener) self->send_hello_and_proof(swarm);
        done(Established{self->peer_, swarm});
      });
    });
  });
}

void PeerLink::send(const Frame& frame, std::function<void(Result<bool>)> done) {
  auto bytes = encode_frame(frame);
  if (!bytes) {
    // A bug of ours, not the peer's: say so where it happened, and keep the link.
    if (done) done(Error{bytes.error()});
    return;
  }
  send_encoded(*bytes, std::move(done));
}

void PeerLink::send_encoded(ByteView frames, std::function<void(Result<bool>)> done) {
  stream_->write(frames, [done = std::move(done)](Result<bool> r) {
    if (done) done(std::move(r));
  });
}

template <class T>
void PeerLink::receive_decoded(Result<T> (*decode)(ByteView), std::function<void(Result<T>)> done) {
  if (auto body = reader_.next()) {
    if (!*body) return done(Error{body->error()});
    return done(decode(**body));
  }
  auto self = shared_from_this();
  // Decrypted straight into the reader's buffer: one TLS record at least fits.
  stream_->read(reader_.space(kTlsRecordBytes), [self, decode, done](Result<std::size_t> got) {
    if (!got) return done(Error{got.error()});
    self->reader_.commit(*got);
    self->receive_decoded(decode, done);
  });
}

void PeerLink::receive(std::function<void(Result<Frame>)> done) { receive_decoded(&decode_frame_body, std::move(done)); }

void PeerLink::receive_view(std::function<void(Result<FrameView>)> done) {
  receive_decoded(&decode_frame_body_view, std::move(done));
}

void PeerLink::receive_tunnel(std::function<void(Result<TunnelFrameView>)> done) {
  receive_decoded(&decode_tunnel_frame_view, std::move(done));
}

void PeerLink::close() { stream_->close(); }

}  // namespace annexswarm
