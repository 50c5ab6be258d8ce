#pragma once
// The swarm directory: typed reads and writes of the swarm's records on the DHT, for every
// swarm this node is in. Reads open each value (signature, seal, decoding, signer = the
// record's node), keep the newest version per publisher, and count what they refuse;
// nothing refused is ever trusted. Each read asks every swarm at once and answers once.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "node/dht_client.hpp"
#include "node/log.hpp"
#include "node/timers.hpp"
#include "protocol/annex_key.hpp"
#include "protocol/records.hpp"

namespace annexswarm {

// Values found on the DHT that we refused, by reason.
struct RefusedValues {
  std::uint64_t unsigned_values = 0;
  std::uint64_t undecryptable = 0;
  std::uint64_t malformed = 0;
  std::uint64_t forged = 0;  // the record names another node than its signer, or another place
  std::uint64_t expired = 0;  // issued longer ago than a record lives (a replay), or in the future
};

// A node in one of our swarms (the index into swarms()).
struct SwarmNode {
  std::size_t swarm = 0;
  NodeId node;
  friend bool operator==(const SwarmNode&, const SwarmNode&) = default;
};

struct Provider {
  std::size_t swarm = 0;
  NodeId node;
  std::string repo_uuid;  // the repository or swarm store that holds the key
};

struct Member {
  std::size_t swarm = 0;
  ContactRecord contact;
};

class SwarmDirectory {
public:
  // `value_secret` is this node's own (derived from its private key): it makes the DHT
  // value ids of our records, which no other member can then predict and take first.
  // `stamp_file` (empty: none) keeps the highest stamp issued, across restarts (see stamp()).
  SwarmDirectory(DhtClient& dht, Timers& timers, NodeId self, std::vector<SwarmToken> swarms,
                 std::chrono::milliseconds lookup_timeout, crypto::Sha256Digest value_secret,
                 std::filesystem::path stamp_file = {});
  ~SwarmDirectory();

  const std::vector<SwarmToken>& swarms() const { return swarms_; }
  const NodeId& self() const { return self_; }
  const RefusedValues& refused() const { return refused_; }

  // Nodes announcing the key (one provider per node and repository).
  void providers(const AnnexKey& key, std::function<void(std::vector<Provider>)> done);
  // Nodes whose repo record says they serve annex repository `uuid` (read again after
  // kContactCacheAge; a repository rarely moves).
  void repo_nodes(const std::string& uuid, std::function<void(std::vector<SwarmNode>)> done);
  // The contact records of these nodes (those found: at each node's own location, or, when
  // none is found there, in the swarm's member list). A record read in the last
  // kContactCacheAge is used again without a lookup, unless it lists an unconfirmed
  // candidate (that node is checking its addresses and will publish again soon);
  // forget_contact drops one (say, when dialling its endpoints failed).
  // answered_from_cache tells whether the last answer for `node` came from the cache.
  static constexpr auto kContactCacheAge = std::chrono::seconds(30);
  void contacts(const std::vector<SwarmNode>& nodes, std::function<void(std::vector<Member>)> done);
  void forget_contact(const NodeId& node);
  bool answered_from_cache(const NodeId& node) const { return from_cache_.count(node) > 0; }
  // Every member's contact record (this node's too), or only the relays'.
  void members(std::chrono::milliseconds timeout, std::function<void(std::vector<Member>)> done);
  void relays(std::chrono::milliseconds timeout, std::function<void(std::vector<Member>)> done);
  std::chrono::milliseconds lookup_timeout() const { return lookup_timeout_; }

  // Writes, in every swarm. A contact record goes to node/<id> and "nodes" (and
  // "relays" when the node offers relaying). Every put is stamped with the time, so
  // every put (a refresh too) carries the next sequence number: see stamp().
  void put_contact(const ContactRecord& contact, bool relay);
  void put_repo(const std::string& uuid);
  void put_bucket(std::size_t swarm, const std::string& repo_uuid, std::uint32_t bucket,
                  const std::vector<std::uint64_t>& tags, std::function<void(bool ok)> done);
  // The swarm rules members publish (each its own version), and ours, in every private swarm.
  void rules(std::chrono::milliseconds timeout, std::function<void(std::vector<RulesRecord>)> done);
  void put_rules(const std::string& document, const std::string& public_keys, std::function<void(bool ok)> done);

private:
  template <class Record>
  using Decoder = Result<Record> (*)(ByteView);
  // One get per swarm at `location(swarm)`; the valid records of all swarms, together.
  template <class Record>
  void read(std::function<DhtLocation(std::size_t swarm)> location, std::chrono::milliseconds timeout,
            Decoder<Record> decode, std::function<void(std::vector<std::pair<std::size_t, Record>>)> done,
            DhtClient::End end = DhtClient::End::Complete);
  template <class Record>
  std::vector<Record> open_values(std::size_t swarm, const DhtLocation& location, const std::vector<DhtValue>& values,
                                  Decoder<Record> decode);
  void refuse(std::uint64_t& counter, const DhtLocation& location, const std::string& why);
  // Value id, sequence number and issue time of our next put at `location` for `slot`.
  // A storage node replaces a signed value only by one with a higher sequence number,
  // and ours are 16 bits. So a put takes a position: the Unix time, or one more than the
  // slot's last position, or than the highest position of the node's last run (the
  // stamp file: a clock set back cannot make a restarted node's puts lower); the
  // sequence number is the position within an epoch of 65536, and the value id changes
  // with the epoch (the old value expires on its own). The issue time rises too, so a
  // reader never sees two versions of one slot with the same time.
  struct Stamp {
    std::uint64_t value_id = 0;
    std::uint16_t seq = 0;
    std::uint64_t issued_at = 0;
  };
  Stamp stamp(const SwarmToken& token, const DhtLocation& location, const std::string& slot);
  std::uint64_t unix_now() const;

  DhtClient& dht_;
  Timers& timers_;
  NodeId self_;
  std::vector<SwarmToken> swarms_;
  std::chrono::milliseconds lookup_timeout_;
  crypto::Sha256Digest value_secret_;
  RefusedValues refused_;
  log::RateLimited refused_log_;
  struct LastStamp {
    std::uint64_t position = 0;
    std::uint64_t issued = 0;
  };
  std::map<std::pair<std::string, std::string>, LastStamp> stamps_;  // (location hex, slot)
  void save_stamps();
  std::filesystem::path stamp_file_;
  std::uint64_t floor_ = 0;      // the highest position of the last run
  std::uint64_t highest_ = 0;    // of this run
  std::uint64_t saved_ = 0;      // highest_ when last saved
  std::uint64_t saved_at_ = 0;   // Unix time of that save
  struct CachedContact {
    std::vector<Member> found;
    Timers::Clock::time_point at;
  };
  std::map<std::pair<std::size_t, NodeId>, CachedContact> contact_cache_;
  std::set<NodeId> from_cache_;
  void remember_contacts(const std::pair<std::size_t, NodeId>& key, const std::vector<Member>& found);
  struct CachedRepo {
    std::vector<SwarmNode> nodes;
    Timers::Clock::time_point at;
  };
  std::map<std::string, CachedRepo> repo_cache_;
};

}  // namespace annexswarm
