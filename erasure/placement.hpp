#pragma once
// Which members hold the shares of an object: rendezvous (highest random weight) hashing
// of the key over the members with room, weighted by the space each offers. Every node
// computes the same answer from the key and the member list, with no coordinator; a
// member joining or leaving moves only the shares it wins or held.
#include <cstdint>
#include <string_view>
#include <vector>

#include "protocol/swarm_token.hpp"

namespace annexswarm::erasure {

struct StoreOffer {
  NodeId node;
  std::uint64_t free_bytes = 0;  // what the node offers its stores now
};

// Up to `count` distinct members for the shares of `key`, best first: share i goes to the
// i-th. Members offering less than `share_bytes` are never chosen; fewer than `count`
// come back when fewer have room (the caller says so, never doubles up).
// The weighted rendezvous score of `node` for `key` (highest wins): with h uniform in
// (0, 1) from a hash of both, -weight / ln(h) ranks each node first with probability
// proportional to its weight (at least 1).
double rendezvous_score(std::string_view key, const NodeId& node, double weight);

std::vector<NodeId> place_shares(std::string_view key, const std::vector<StoreOffer>& members, std::size_t count,
                                 std::uint64_t share_bytes);

}  // namespace annexswarm::erasure
