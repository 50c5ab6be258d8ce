#pragma once
// A dialer that reaches nobody: every dial fails at once with the reason given, and is
// recorded. For service tests that must not touch the network.
#include "transfer/peer_dialer.hpp"

namespace annexswarm::test {

class FailingDialer final : public PeerDialer {
public:
  explicit FailingDialer(std::string why = "cannot connect: Connection refused") : why_(std::move(why)) {}
  void dial(const PeerAddress& peer, const SwarmToken&, DialFn done) override {
    dialled.push_back(peer.node);
    done(Error{why_});
  }
  std::vector<NodeId> dialled;

private:
  std::string why_;
};

}  // namespace annexswarm::test
