#include "node/swarm_directory.hpp"

#include <algorithm>
#include <cstring>
#include <map>

#include "node/gather.hpp"
#include "node/log.hpp"
#include "node/state_files.hpp"

namespace annexswarm {
namespace {
// DhtClient::get answers by its own timeout; this only guards against one that does not.
constexpr auto kGatherSlack = std::chrono::seconds(2);

// What one signer publishes once at a location (the slot names of stamp()).
std::string slot_of(const ContactRecord&) { return "contact"; }
std::string slot_of(const RepoRecord& r) { return "repo/" + r.uuid; }
std::string slot_of(const ProviderBucketRecord& r) { return "provider/" + r.repo_uuid; }
std::string slot_of(const RulesRecord&) { return "rules"; }
}  // namespace

SwarmDirectory::SwarmDirectory(DhtClient& dht, Timers& timers, NodeId self, std::vector<SwarmToken> swarms,
                               std::chrono::milliseconds lookup_timeout, crypto::Sha256Digest value_secret,
                               std::filesystem::path stamp_file)
    : dht_(dht),
      timers_(timers),
      self_(self),
      swarms_(std::move(swarms)),
      lookup_timeout_(lookup_timeout),
      value_secret_(value_secret),
      stamp_file_(std::move(stamp_file)) {
  if (stamp_file_.empty()) return;
  if (auto text = read_file(stamp_file_)) {
    try {
      floor_ = std::stoull(*text);
    } catch (const std::exception&) {
      log::warn("{} is unreadable; starting from the clock", stamp_file_.string());
    }
  }
  highest_ = saved_ = floor_;
}

SwarmDirectory::~SwarmDirectory() { save_stamps(); }

void SwarmDirectory::save_stamps() {
  if (stamp_file_.empty() || highest_ == saved_) return;
  if (auto r = write_file_atomic(stamp_file_, std::to_string(highest_) + "\n", 0600); !r)
    log::warn("cannot save {}: {}", stamp_file_.string(), r.error());
  saved_ = highest_;
  saved_at_ = unix_now();
}

std::uint64_t SwarmDirectory::unix_now() const {
  auto since = timers_.wall_now().time_since_epoch();
  return static_cast<std::uint64_t>(std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::seconds>(since).count()));
}

SwarmDirectory::Stamp SwarmDirectory::stamp(const SwarmToken& token, const DhtLocation& location,
                                            const std::string& slot) {
  auto now = unix_now();
  auto& last = stamps_[{location.hex(), slot}];
  auto position = std::max({now, last.position + 1, floor_ + 1});
  auto issued = std::max(now, last.issued + 1);
  last = {position, issued};
  highest_ = std::max(highest_, position);
  if (now >= saved_at_ + 30) save_stamps();  // at most every 30 s, and when the node stops
  std::uint64_t epoch = position >> 16;
  auto seq = static_cast<std::uint16_t>(position & 0xffff);
  Bytes input(16);
  auto name = token.value_id(slot);
  for (int b = 0; b < 8; ++b) {
    input[b] = static_cast<std::uint8_t>(name >> (8 * b));
    input[8 + b] = static_cast<std::uint8_t>(epoch >> (8 * b));
  }
  auto digest = crypto::hmac_sha256(value_secret_, input);
  std::uint64_t id = 0;
  std::memcpy(&id, digest.data(), sizeof id);
  return {id == 0 ? 1 : id, seq, issued};  // OpenDHT reserves id 0
}

void SwarmDirectory::refuse(std::uint64_t& counter, const DhtLocation& location, const std::string& why) {
  ++counter;
  std::uint64_t suppressed = 0;
  if (refused_log_.allow(std::chrono::steady_clock::now(), suppressed))
    log::warn("ignored a DHT value at {}: {} ({} similar lines suppressed)", location.hex(), why, suppressed);
}

template <class Record>
std::vector<Record> SwarmDirectory::open_values(std::size_t swarm, const DhtLocation& location,
                                                const std::vector<DhtValue>& values, Decoder<Record> decode) {
  // Per signer and record slot (its value id changes with the epoch), the newest issue
  // time wins: storage nodes may lag, and the value of the last epoch lingers.
  auto now = unix_now();
  std::map<std::pair<NodeId, std::string>, std::pair<std::uint64_t, Record>> latest;
  for (const auto& v : values) {
    if (!v.is_signed) {
      refuse(refused_.unsigned_values, location, "unsigned value");
      continue;
    }
    auto opened = open_record(swarms_[swarm], location, v.data);
    if (!opened) {
      refuse(refused_.undecryptable, location, opened.error());
      continue;
    }
    auto lifetime = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(kRecordLifetime).count());
    if (opened->issued_at + lifetime + kRecordClockSkew < now || opened->issued_at > now + kRecordClockSkew) {
      refuse(refused_.expired, location,
             opened->issued_at > now ? "record issued in the future (the signer's clock is wrong)"
                                     : "record issued " + std::to_string(now - opened->issued_at) +
                                           " s ago, longer than a record lives (replayed?)");
      continue;
    }
    auto record = decode(ByteView(opened->body));
    if (!record) {
      refuse(refused_.malformed, location, record.error());
      continue;
    }
    if (record->node != v.owner) {
      refuse(refused_.forged, location,
             "record names node " + record->node.hex() + " but is signed by " + v.owner.hex());
      continue;
    }
    auto slot = std::make_pair(v.owner, slot_of(*record));
    auto it = latest.find(slot);
    if (it == latest.end() || opened->issued_at > it->second.first)
      latest.insert_or_assign(slot, std::make_pair(opened->issued_at, std::move(*record)));
  }
  std::vector<Record> out;
  for (auto& [slot, entry] : latest) out.push_back(std::move(entry.second));
  return out;
}

template <class Record>
void SwarmDirectory::read(std::function<DhtLocation(std::size_t)> location, std::chrono::milliseconds timeout,
                          Decoder<Record> decode, std::function<void(std::vector<std::pair<std::size_t, Record>>)> done,
                          DhtClient::End end) {
  using Found = std::vector<Record>;
  gather<Found>(
      timers_, swarms_.size(), timeout + kGatherSlack,
      [this, location, timeout, decode, end](std::size_t si, Answer<Found> answer) {
        auto loc = location(si);
        dht_.get(
            loc, timeout,
            [this, si, loc, decode, answer](std::vector<DhtValue> values) { answer(open_values<Record>(si, loc, values, decode)); },
            end);
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
          remember_contacts(key, found);
          answer(std::move(found));
        });
      },
      [this, nodes, done = std::move(done)](std::vector<std::optional<Found>> answers) {
        Found out;
        std::vector<SwarmNode> missing;
        for (std::size_t i = 0; i < answers.size(); ++i) {
          if (!answers[i] || answers[i]->empty()) missing.push_back(nodes[i]);
          else
            for (auto& m : *answers[i]) out.push_back(std::move(m));
        }
        if (missing.empty() || !out.empty()) return done(std::move(out));
        // None found where the nodes keep them: a record put while the DHT was still forming
        // (or while this machine was busy) may not have reached the nodes now closest to
        // that location yet. The swarm's member list carries the same signed record, put
        // at the same time to another location: look there before saying "no contact".
        // (With some found, their callers go ahead: the list is one more lookup, and
        // provider records outlive nodes that left.)
        members(lookup_timeout_, [this, missing, done](std::vector<Member> all) {
          Found out;
          for (auto& m : all) {
            SwarmNode n{m.swarm, m.contact.node};
            if (std::find(missing.begin(), missing.end(), n) == missing.end()) continue;
            log::info("contact record of {} found in the member list, not yet at its own location", n.node.hex());
            remember_contacts({n.swarm, n.node}, {m});
            out.push_back(std::move(m));
          }
          done(std::move(out));
        });
      });
}

void SwarmDirectory::remember_contacts(const std::pair<std::size_t, NodeId>& key, const std::vector<Member>& found) {
  auto settled = std::none_of(found.begin(), found.end(), [](const Member& m) {
    return std::any_of(m.contact.endpoints.begin(), m.contact.endpoints.end(),
                       [](const Endpoint& e) { return e.kind == EndpointKind::Candidate; });
  });
  if (!found.empty() && settled) contact_cache_[key] = {found, timers_.now()};
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

void SwarmDirectory::put_contact(const ContactRecord& contact, bool relay) {
  auto body = encode(contact);
  for (const auto& token : swarms_) {
    std::vector<DhtLocation> locations{token.node_location(self_), token.nodes_location()};
    if (relay) locations.push_back(token.relays_location());
    for (const auto& loc : locations) {
      auto s = stamp(token, loc, slot_of(contact));
      dht_.put(loc, s.value_id, s.seq, seal_record(token, loc, body, s.issued_at), [](bool) {});
    }
  }
}

void SwarmDirectory::put_repo(const std::string& uuid) {
  RepoRecord record{self_, uuid};
  auto body = encode(record);
  for (const auto& token : swarms_) {
    auto loc = token.repo_location(uuid);
    auto s = stamp(token, loc, slot_of(record));
    dht_.put(loc, s.value_id, s.seq, seal_record(token, loc, body, s.issued_at), [](bool) {});
  }
}

void SwarmDirectory::put_bucket(std::size_t swarm, const std::string& repo_uuid, std::uint32_t bucket,
                                const std::vector<std::uint64_t>& tags, std::function<void(bool)> done) {
  const auto& token = swarms_[swarm];
  auto loc = token.bucket_location(bucket);
  ProviderBucketRecord record{self_, repo_uuid, bucket, tags};
  auto s = stamp(token, loc, slot_of(record));
  dht_.put(loc, s.value_id, s.seq, seal_record(token, loc, encode(record), s.issued_at), std::move(done));
}

void SwarmDirectory::rules(std::chrono::milliseconds timeout, std::function<void(std::vector<RulesRecord>)> done) {
  // Only private swarms have rules: anyone knows the public swarm's token.
  read<RulesRecord>([this](std::size_t si) { return swarms_[si].rules_location(); }, timeout, decode_rules,
                    [this, done = std::move(done)](auto records) {
                      std::vector<RulesRecord> out;
                      for (auto& [si, rec] : records)
                        if (!swarms_[si].is_public()) out.push_back(std::move(rec));
                      done(std::move(out));
                    });
}

void SwarmDirectory::put_rules(const std::string& document, const std::string& public_keys,
                               std::function<void(bool)> done) {
  RulesRecord record{self_, document, public_keys};
  auto body = encode(record);
  auto waiting = std::make_shared<std::size_t>(0);
  auto all_ok = std::make_shared<bool>(true);
  std::vector<std::pair<const SwarmToken*, DhtLocation>> targets;
  for (const auto& token : swarms_)
    if (!token.is_public()) targets.emplace_back(&token, token.rules_location());
  if (targets.empty()) return timers_.post([done] { done(false); });
  *waiting = targets.size();
  for (const auto& [token, loc] : targets) {
    auto s = stamp(*token, loc, slot_of(record));
    dht_.put(loc, s.value_id, s.seq, seal_record(*token, loc, body, s.issued_at), [waiting, all_ok, done](bool ok) {
      *all_ok = *all_ok && ok;
      if (--*waiting == 0) done(*all_ok);
    });
  }
}

}  // namespace annexswarm
