#pragma once
// The share map of an erasure-coded object: which shares make it (their keys, in share
// order), its shape and layout. Every holder keeps it as an object of the store under the
// map key, which only the object's key names, so any member finds the holders of an
// object's shares from its key alone (whereis of the map key) and then each share's.
//   annex-swarm share map 1
//   key SHA256E-s50331648--...
//   shape 4+2
//   size 50331648
//   unit 1048576
//   share SWARMSHARE-s12582912--<root>     (K+M lines, share 0 first)
//   holder 0 <node id>                      (optional: where a share was placed)
#include <string>
#include <vector>

#include "erasure/shares.hpp"
#include "protocol/annex_key.hpp"
#include "protocol/swarm_token.hpp"

namespace annexswarm::erasure {

inline constexpr std::string_view kMapBackend = "SWARMMAP";

struct ShareMap {
  AnnexKey key;
  ShareLayout layout;
  std::vector<AnnexKey> shares;
  // Where each share was placed when the object was stored: a hint that saves waiting for
  // the holders' announcements; the shares' providers on the DHT are asked as well.
  std::vector<std::optional<NodeId>> holders;

  // Share keys from the digests of an encode.
  static ShareMap of(const AnnexKey& key, const ShareLayout& layout, const ShareDigests& digests);
  // SWARMMAP--<SHA-256 of the object's key>: where the map of `key` is kept.
  static AnnexKey map_key(const AnnexKey& key);
  std::string text() const;
  // Strict: every line as written by text(), the layout as plan() makes it for that size
  // and shape, K+M distinct... share keys of the layout's share size. `key` is the object
  // the asker wants (a map for another object is an error).
  static Result<ShareMap> parse(std::string_view text, const AnnexKey& key);
  // The same, for whichever object the map names (a holder taking a share).
  static Result<ShareMap> parse_any(std::string_view text);
  // The share's index in this map, if it is one of its shares.
  std::optional<unsigned> index_of(const AnnexKey& share) const;
};

}  // namespace annexswarm::erasure
