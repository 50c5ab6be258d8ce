#pragma once
// The node's OpenDHT identity (RSA key + self-signed certificate). Its public key id is
// the node id, stable across restarts; later the same certificate authenticates TLS.
#include <opendht/crypto.h>

#include <filesystem>

#include "protocol/result.hpp"
#include "protocol/swarm_token.hpp"

namespace annexswarm {

// RSA-2048: a provider record costs one signature, and 2048-bit keys sign about six
// times faster than OpenDHT's 4096-bit default, which is what lets a node announce
// 10^5 keys in minutes.
inline constexpr unsigned kIdentityKeyBits = 2048;

Result<dht::crypto::Identity> load_or_create_identity(const std::filesystem::path& state_dir,
                                                      bool& created);
NodeId node_id_of(const dht::crypto::Identity& identity);

}  // namespace annexswarm
