#include "node/swarm_directory.hpp"

#include <algorithm>
#include <map>

#include "node/gather.hpp"

namespace annexswarm {
namespace {
// DhtClient::get answers by its own timeout; this only guards against one that does not.
constexpr auto kGatherSlack = std::chrono::seconds(2);
}  // namespace

SwarmDirectory::SwarmDirectory(DhtClient& dht, Timers& timers, NodeId self, std::vector<SwarmToken> swarms,
                               std::chrono::milliseconds lookup_timeout)
    : dht_(dht), timers_(timers), self_(self), swarms_(std::move(swarms)), lookup_timeout_(lookup_timeout) {}

void SwarmDirectory::refuse(std::uint64_t& counter, const DhtLocation& location, const std::string& why) {
  ++counter;
  std::uint64_t suppressed = 0;
  if (refused_log_.allow(std::chrono::steady_clock::now(), suppressed))
    log::warn("ignored a DHT value at {}: {} ({} similar lines suppressed)", location.hex(), why, suppressed);
}

template <class Record>
std::vector<Record> SwarmDirectory::open_values(std::size_t swarm, const DhtLocation& location,
                                                const std::vector<DhtValue>& values, Decoder<Record> decode) {
  // The newest sequence number per (signer, value id) wins: storage nodes may lag.
  std::map<std::pair<NodeId, std::uint64_t>, std::pair<std::uint16_t, Record>> latest;
  for (const auto& v : values) {
    if (!v.is_signed) {
      refuse(refused_.unsigned_values, location, "unsigned value");
      continue;
    }
    auto body = open_record(swarms_[swarm], location, v.data);
    if (!body) {
      refuse(refused_.undecryptable, location, body.error());
      continue;
    }
    auto record = decode(ByteView(*body));
    if (!record) {
      refuse(refused_.malformed, location, record.error());
      continue;
    }
    if (record->node != v.owner) {
      refuse(refused_.forged, location,
             "record names node " + record->node.hex() + " but is signed by " + v.owner.hex());
      continue;
    }
    auto slot = std::make_pair(v.owner, v.id);
    auto it = latest.find(slot);
    if (it == latest.end() || static_cast<std::int16_t>(v.seq - it->second.first) > 0)
      latest.insert_or_assign(slot, std::make_pair(v.seq, std::move(*record)));
  }
  std::vector<Record> out;
  for (auto& [slot, entry] : latest) out.push_back(std::move(entry.second));
  return out;
}

template <class Record>
void SwarmDirectory::read(std::function<DhtLocation(std::size_t)> location, std::chrono::milliseconds timeout,
                          Decoder<Record> decode, std::function<void(std::vector<std::pair<std::size_t, Record>>)> done) {
  using Found = std::vector<Record>;
  gather<Found>(
      timers_, swarms_.size(), timeout + kGatherSlack,
      [this, location, timeout, decode](std::size_t si, Answer<Found> answer) {
        auto loc = location(si);
        dht_.get(loc, timeout, [this, si, loc, decode, answer](std::vector<DhtValue> values) {
          answer(open_values<Record>(si, loc, values, decode));
        });
      },
      [done = std::move(done)](std::vector<std::optional<Found>> per_swarm) {
        std::vector<std::pair<std::size_t, Record>> out;
        for (std::size_t si = 0; si < per_swarm.size(); ++si)
          if (per_swarm[si])
            for (auto& r : *per_swarm[si]) out.emplace_back(si, std::move(r));
        done(std::move(out));
      });
}

void SwarmDirectory::providers(const AnnexKey& key, std::function<void(std::vector<Provider>)> done) {
  std::vector<KeyIndex> index;
  for (const auto& s : swarms_) index.push_back(s.key_index(key));
  auto location = [this, index](std::size_t si) { return swarms_[si].bucket_location(index[si].bucket); };
  read<ProviderBucketRecord>(location, lookup_timeout_, decode_provider_bucket,
                             [this, index, location, done = std::move(done)](auto records) {
                               std::vector<Provider> out;
                               for (auto& [si, rec] : records) {
                                 if (rec.bucket != index[si].bucket) {
                                   refuse(refused_.forged, location(si), "provider record for another bucket");
                                   continue;
                                 }
                                 if (rec.holds(index[si].tag)) out.push_back({si, rec.node, rec.repo_uuid});
                               }
                               done(std::move(out));
                             });
}

void SwarmDirectory::repo_nodes(const std::string& uuid, std::function<void(std::vector<SwarmNode>)> done) {
  if (auto it = repo_cache_.find(uuid); it != repo_cache_.end()) {
    if (timers_.now() - it->second.at < kContactCacheAge) return done(it->second.nodes);
    repo_cache_.erase(it);
  }
  read<RepoRecord>([this, uuid](std::size_t si) { return swarms_[si].repo_location(uuid); }, lookup_timeout_,
                   decode_repo, [this, uuid, done = std::move(done)](auto records) {
                     std::vector<SwarmNode> out;
                     for (auto& [si, rec] : records)
                       if (rec.uuid == uuid) out.push_back({si, rec.node});
                     if (!out.empty()) repo_cache_[uuid] = {out, timers_.now()};
                     done(std::move(out));
                   });
}

void SwarmDirectory::forget_contact(const NodeId& node) {
  std::erase_if(contact_cache_, [&](const auto& kv) { return kv.first.second == node; });
  std::erase_if(repo_cache_, [&](const auto& kv) {
    return std::any_of(kv.second.nodes.begin(), kv.second.nodes.end(), [&](const SwarmNode& n) { return n.node == node; });
  });
}

void SwarmDirectory::contacts(const std::vector<SwarmNode>& nodes, std::function<void(std::vector<Member>)> done) {
  using Found = std::vector<Member>;
  gather<Found>(
      timers_, nodes.size(), lookup_timeout_ + kGatherSlack,
      [this, nodes](std::size_t i, Answer<Found> answer) {
        auto [si, node] = nodes[i];
        auto key = std::make_pair(si, node);
        if (auto it = contact_cache_.find(key); it != contact_cache_.end()) {
          if (timers_.now() - it->second.at < kContactCacheAge && !it->second.found.empty()) {
            from_cache_.insert(node);
            return answer(it->second.found);
          }
          contact_cache_.erase(it);
        }
        auto loc = swarms_[si].node_location(node);
        dht_.get(loc, lookup_timeout_, [this, si = si, node = node, key, loc, answer](std::vector<DhtValue> values) {
          Found found;
          for (auto& rec : open_values<ContactRecord>(si, loc, values, decode_contact))
            if (rec.node == node) found.push_back({si, std::move(rec)});
          from_cache_.erase(node);
          auto settled = std::none_of(found.begin(), found.end(), [](const Member& m) {
            return std::any_of(m.contact.endpoints.begin(), m.contact.endpoints.end(),
                               [](const Endpoint& e) { return e.kind == EndpointKind::Candidate; });
          });
          if (!found.empty() && settled) contact_cache_[key] = {found, timers_.now()};
          answer(std::move(found));
        });
      },
      [done = std::move(done)](std::vector<std::optional<Found>> answers) {
        Found out;
        for (auto& a : answers)
          if (a)
            for (auto& m : *a) out.push_back(std::move(m));
        done(std::move(out));
      });
}

void SwarmDirectory::members(std::chrono::milliseconds timeout, std::function<void(std::vector<Member>)> done) {
  read<ContactRecord>([this](std::size_t si) { return swarms_[si].nodes_location(); }, timeout, decode_contact,
                      [done = std::move(done)](auto records) {
                        std::vector<Member> out;
                        for (auto& [si, rec] : records) out.push_back({si, std::move(rec)});
                        done(std::move(out));
                      });
}

void SwarmDirectory::relays(std::chrono::milliseconds timeout, std::function<void(std::vector<Member>)> done) {
  read<ContactRecord>([this](std::size_t si) { return swarms_[si].relays_location(); }, timeout, decode_contact,
                      [done = std::move(done)](auto records) {
                        std::vector<Member> out;
                        for (auto& [si, rec] : records)
                          if (rec.capabilities & kCapabilityRelay) out.push_back({si, std::move(rec)});
                        done(std::move(out));
                      });
}

void SwarmDirectory::put_contact(const ContactRecord& contact, std::uint16_t seq, bool relay) {
  auto body = encode(contact);
  for (const auto& token : swarms_) {
    auto id = token.value_id("contact/" + self_.hex());
    std::vector<DhtLocation> locations{token.node_location(self_), token.nodes_location()};
    if (relay) locations.push_back(token.relays_location());
    for (const auto& loc : locations) dht_.put(loc, id, seq, seal_record(token, loc, body), [](bool) {});
  }
}

void SwarmDirectory::put_repo(const std::string& uuid) {
  auto body = encode(RepoRecord{self_, uuid});
  for (const auto& token : swarms_) {
    auto loc = token.repo_location(uuid);
    dht_.put(loc, token.value_id("repo/" + self_.hex() + "/" + uuid), 0, seal_record(token, loc, body), [](bool) {});
  }
}

void SwarmDirectory::put_bucket(std::size_t swarm, const std::string& repo_uuid, std::uint32_t bucket,
                                std::uint16_t seq, const std::vector<std::uint64_t>& tags,
                                std::function<void(bool)> done) {
  const auto& token = swarms_[swarm];
  auto loc = token.bucket_location(bucket);
  auto sealed = seal_record(token, loc, encode(ProviderBucketRecord{self_, repo_uuid, bucket, tags}));
  dht_.put(loc, token.value_id("provider/" + self_.hex() + "/" + repo_uuid), seq, std::move(sealed), std::move(done));
}

}  // namespace annexswarm
