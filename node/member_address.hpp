#pragma once
// How this node dials members, from their contact records: endpoints in the record's
// order, then circuits through the relays named there. A relay that is this node itself
// is reached on loopback (its own public address from inside a NAT would need the
// router to hairpin).
#include <string>
#include <vector>

#include "node/swarm_directory.hpp"
#include "transfer/fetcher.hpp"

namespace annexswarm {

struct SelfAddress {
  NodeId node;
  std::string listen;  // empty: all interfaces
  std::uint16_t peer_port = 0;
};

// A node id as logs and errors name it: its first 8 hex digits.
inline std::string node_short(const NodeId& n) { return n.hex().substr(0, 8); }

// Members without a usable endpoint are left out.
std::vector<FetchSource> dialable(const std::vector<Member>& members, const SelfAddress& self);

}  // namespace annexswarm
