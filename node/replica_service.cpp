#include "node/replica_service.hpp"

#include <asio/post.hpp>

#include <algorithm>
#include <ctime>
#include <sstream>

#include "erasure/share_map.hpp"
#include "node/gather.hpp"
#include "node/keepers.hpp"
#include "node/log.hpp"
#include "node/swarm_store.hpp"
#include "protocol/crypto.hpp"
#include "protocol/possession.hpp"

namespace annexswarm {
namespace fs = std::filesystem;

namespace {
constexpr auto kHolderAskTimeout = std::chrono::seconds(15);
constexpr auto kSweepSoon = std::chrono::milliseconds(200);
constexpr std::size_t kMaxWanted = 10000;  // keys remembered per store as asked of us
constexpr std::size_t kMaxChain = 16;      // keepers a TAKE may ask to hand the key on to
constexpr auto kPushedQuiet = std::chrono::seconds(30);  // a chain asked is not asked again sooner


// Whole objects only: shares and share maps belong to erasure-coded stores.
bool replicable(const AnnexKey& key) {
  return !key.is_share() && key.backend() != erasure::kMapBackend;
}

// The store's candidates: the nodes of its keep-on groups, or of every group when it
// names none.
std::vector<NodeId> candidates_of(const SwarmRules& rules, const StoreRule& rule) {
  std::set<NodeId> out;
  for (const auto& [name, nodes] : rules.groups)
    if (rule.keep_on.empty() || std::find(rule.keep_on.begin(), rule.keep_on.end(), name) != rule.keep_on.end())
      out.insert(nodes.begin(), nodes.end());
  return {out.begin(), out.end()};
}

std::int64_t sweep_unix_seconds() { return static_cast<std::int64_t>(std::time(nullptr)); }
}  // namespace

struct ReplicaService::StoreSweep {
  std::size_t index = 0;
  std::string uuid;
  unsigned copies = 0;
  std::chrono::milliseconds grace{0};
  std::vector<NodeId> candidates;
  std::shared_ptr<std::vector<KeyHeld>> keys = std::make_shared<std::vector<KeyHeld>>();
};

struct ReplicaService::Trim {
  std::string store;
  KeyHeld key;
  unsigned copies = 0;
  std::chrono::milliseconds settle{0};  // a younger copy is not trimmed yet
  std::vector<Member> keepers;
};

ReplicaService::ReplicaService(asio::io_context& io, Timers& timers, asio::any_io_executor disk,
                               SwarmDirectory& directory, LocalObjects& objects, PeerPool& pool, Settings settings)
    : io_(io),
      timers_(timers),
      disk_(std::move(disk)),
      directory_(directory),
      objects_(objects),
      pool_(pool),
      settings_(std::move(settings)),
      sweep_timer_(timers.make_timer()),
      started_(timers.now()) {}

ReplicaService::~ReplicaService() { *alive_ = false; }

void ReplicaService::start_sweeps(std::chrono::milliseconds interval) {
  interval_ = interval;
  status_.interval_seconds = std::chrono::duration_cast<std::chrono::seconds>(interval).count();
  if (interval.count() == 0) return sweep_timer_->cancel();
  sweep_timer_->schedule(std::min<std::chrono::milliseconds>(interval, std::chrono::seconds(5)), [this] { sweep(); });
}

void ReplicaService::sweep_soon() {
  if (stopping_ || interval_.count() == 0) return;
  if (sweeping_) {
    again_ = true;
    return;
  }
  sweep_timer_->schedule(kSweepSoon, [this] { sweep(); });
}

void ReplicaService::stop() {
  stopping_ = true;
  sweep_timer_->cancel();
  queue_.clear();
  auto fetching = std::move(fetching_);
  fetching_.clear();
  for (auto& [key, f] : fetching)
    if (f.fetcher) f.fetcher->cancel("the node is stopping");
}

bool ReplicaService::in_hours() const { return in_hours_now(settings_.hours ? settings_.hours() : std::nullopt); }

std::chrono::milliseconds ReplicaService::grace_of(const StoreRule& rule) const {
  return rule.grace ? std::chrono::milliseconds(*rule.grace) : std::chrono::milliseconds(kDefaultGrace);
}

ReplicaStatus ReplicaService::status() const {
  auto s = status_;
  s.in_hours = in_hours();
  for (auto& st : s.stores) {
    st.fetching = 0;
    for (const auto& [key, f] : fetching_) st.fetching += f.store == st.uuid && f.started;
    auto w = wanted_.find(st.uuid);
    st.wanted_missing = w == wanted_.end() ? 0 : w->second.size();
  }
  // A store this node only fetches into so far (it holds none of its keys yet).
  for (const auto& [store, keys] : wanted_) {
    if (keys.empty() || std::any_of(s.stores.begin(), s.stores.end(), [&](const auto& st) { return st.uuid == store; }))
      continue;
    ReplicaStatus::Store st;
    st.uuid = store;
    st.wanted_missing = keys.size();
    for (const auto& [key, f] : fetching_) st.fetching += f.store == store && f.started;
    s.stores.push_back(std::move(st));
  }
  return s;
}

std::optional<PeerServer::PartialObject> ReplicaService::partial(const AnnexKey& key) const {
  auto it = fetching_.find(key.str());
  if (it == fetching_.end() || it->second.part.empty()) return std::nullopt;
  return PeerServer::PartialObject{
      it->second.part, it->second.manifest, [this, alive = alive_, key = key.str()](std::uint64_t offset, std::uint64_t length) {
        if (!*alive) return false;
        auto f = fetching_.find(key);
        if (f == fetching_.end() || !f->second.manifest || length == 0) return false;
        auto first = offset / peer::kManifestChunk, last = (offset + length - 1) / peer::kManifestChunk;
        if (last >= f->second.done.size()) return false;
        for (auto c = first; c <= last; ++c)
          if (!f->second.done[c]) return false;
        return true;
      }};
}

// ---- sweeps ----

void ReplicaService::sweep() {
  if (stopping_ || sweeping_) return;
  auto rules = settings_.rules ? settings_.rules() : std::nullopt;
  auto jobs = std::make_shared<std::vector<StoreSweep>>();
  if (rules) {
    for (std::size_t i = 0; i < objects_.all().size(); ++i) {
      const auto& repo = objects_.at(i);
      auto rule = rules->stores.find(repo.uuid);
      if (!repo.store || rule == rules->stores.end() || !rule->second.copies || *rule->second.copies == 0) continue;
      StoreSweep job;
      job.index = i;
      job.uuid = repo.uuid;
      job.copies = *rule->second.copies;
      job.grace = grace_of(rule->second);
      job.candidates = candidates_of(*rules, rule->second);
      jobs->push_back(std::move(job));
    }
  }
  std::erase_if(status_.stores, [&](const auto& st) {
    return std::none_of(jobs->begin(), jobs->end(), [&](const auto& j) { return j.uuid == st.uuid; });
  });
  if (jobs->empty()) return sweep_done();
  sweeping_ = true;
  std::vector<AnnexRepo> repos;
  for (const auto& j : *jobs) repos.push_back(objects_.at(j.index));
  // The keys each store holds, listed on the disk worker (a store may hold many).
  asio::post(disk_, [this, alive = alive_, jobs, repos] {
    for (std::size_t i = 0; i < jobs->size(); ++i) {
      for (const auto& name : scan_present_keys(repos[i]).keys) {
        auto key = AnnexKey::parse(name);
        if (!key || !replicable(*key)) continue;
        auto size = key->content_size();
        if (!size) {
          std::error_code ec;
          auto bytes = fs::file_size(store_object_path(repos[i], *key), ec);
          if (ec) continue;
          size = bytes;
        }
        (*jobs)[i].keys->push_back({*key, *size});
      }
    }
    asio::post(io_, [this, alive, jobs] {
      if (!*alive || stopping_) return;
      directory_.members(directory_.lookup_timeout(), [this, alive, jobs](std::vector<Member> members) {
        if (!*alive || stopping_) return;
        // A node in a public swarm and one of ours is taken in ours (the public swarm keeps
        // no stores).
        std::map<NodeId, Member> contacts;
        for (auto& m : members) {
          auto it = contacts.find(m.contact.node);
          if (it == contacts.end() || directory_.swarms()[it->second.swarm].is_public())
            contacts[m.contact.node] = std::move(m);
        }
        sweep_store(jobs, 0, std::move(contacts));
      });
    });
  });
}

void ReplicaService::sweep_store(std::shared_ptr<std::vector<StoreSweep>> jobs, std::size_t i,
                                 std::map<NodeId, Member> contacts) {
  if (i >= jobs->size()) return sweep_done();
  const auto& job = (*jobs)[i];
  const auto self = directory_.self();
  std::vector<Member> asked;
  for (const auto& node : job.candidates)
    if (auto it = contacts.find(node); node != self && it != contacts.end()) asked.push_back(it->second);
  auto keys = std::shared_ptr<const std::vector<KeyHeld>>(job.keys);
  using Holds = std::optional<std::vector<bool>>;
  auto batches = (keys->size() + peer::kMaxHaveKeys - 1) / peer::kMaxHaveKeys;
  auto deadline = kHolderAskTimeout * static_cast<int>(std::max<std::size_t>(batches, 1)) + std::chrono::seconds(5);
  gather<Holds>(
      timers_, keys->empty() ? 0 : asked.size(), deadline,
      [this, asked, keys, store = job.uuid](std::size_t n, Answer<Holds> answer) {
        ask_holds(asked[n], store, keys, std::move(answer));
      },
      [this, alive = alive_, jobs, i, contacts = std::move(contacts), asked](std::vector<std::optional<Holds>> answers) {
        if (!*alive || stopping_) return;
        const auto& job = (*jobs)[i];
        const auto self = directory_.self();
        const auto now = timers_.now();
        std::map<NodeId, const std::vector<bool>*> holds;
        for (std::size_t n = 0; n < answers.size(); ++n)
          if (answers[n] && *answers[n]) {
            last_seen_[asked[n].contact.node] = now;
            holds[asked[n].contact.node] = &**answers[n];
          }
        // Live: this node, and every candidate seen within the grace period (or not yet
        // due: a node that just started gives the others that long to answer).
        ReplicaStatus::Store st;
        st.uuid = job.uuid;
        st.copies = job.copies;
        st.grace_seconds = std::chrono::duration_cast<std::chrono::seconds>(job.grace).count();
        st.held = job.keys->size();
        st.swept_at = sweep_unix_seconds();
        std::vector<KeeperCandidate> live;
        for (const auto& node : job.candidates) {
          if (node == self) {
            live.push_back({self, settings_.store_offer ? settings_.store_offer() : 0, false});
            continue;
          }
          auto contact = contacts.find(node);
          auto seen = last_seen_.try_emplace(node, started_).first->second;
          if (contact == contacts.end() || now - seen > job.grace) {
            st.lost.push_back(node.hex());
            continue;
          }
          live.push_back({node, contact->second.contact.store_offer, false});
        }
        if (auto w = wanted_.find(job.uuid); w != wanted_.end())
          for (const auto& held : *job.keys) w->second.erase(held.key.str());
        bool may_act = in_hours();
        std::size_t pushes = 0;
        auto trims = std::make_shared<std::vector<Trim>>();
        for (std::size_t k = 0; k < job.keys->size(); ++k) {
          const auto& held = (*job.keys)[k];
          std::set<NodeId> holders{self};
          for (auto& c : live) {
            c.holds = c.node == self || (holds.count(c.node) && (*holds[c.node])[k]);
            if (!c.holds) continue;
            holders.insert(c.node);
            // Asked lately and holding it now: done. Should it drop the key later (a
            // trim), it may be asked again at once.
            quiet_until_.erase({held.key.str(), c.node});
          }
          auto keepers = choose_keepers(held.key.str(), held.size, live, job.copies);
          std::set<NodeId> refused;
          for (const auto& node : keepers)
            if (auto r = quiet_until_.find({held.key.str(), node}); r != quiet_until_.end() && r->second > now)
              refused.insert(node);
          auto plan = plan_for_holder(self, keepers, holders, refused, job.copies);
          st.below_target += plan.below_target;
          if (!may_act) continue;
          if (!plan.push_to.empty()) {
            if (pushes == kMaxPushesPerSweep) {
              again_ = true;  // more to ask: the next sweep comes soon, past the keys asked now
            } else {
              ++pushes;
              for (const auto& node : plan.push_to) quiet_until_[{held.key.str(), node}] = now + kPushedQuiet;
              hand_on(contacts.at(plan.push_to[0]).swarm, job.uuid, held.key.str(), plan.push_to);
            }
          }
          if (plan.trim_after_proofs && trims->size() < kMaxTrimsPerSweep) {
            Trim t{job.uuid, held, job.copies, std::max(job.grace, settings_.min_trim_age), {}};
            for (const auto& node : plan.prove) t.keepers.push_back(contacts.at(node));
            trims->push_back(std::move(t));
          }
        }
        std::erase_if(quiet_until_, [&](const auto& r) { return r.second <= now; });
        auto old = std::find_if(status_.stores.begin(), status_.stores.end(), [&](const auto& s) { return s.uuid == st.uuid; });
        bool news = old == status_.stores.end() || old->held != st.held || old->below_target != st.below_target ||
                    old->lost != st.lost;
        if (news)
          log::info("replication of store {} ({} copies): {} key(s) held here, {} below {} copies{}{}", st.uuid,
                    st.copies, st.held, st.below_target, st.copies, st.lost.empty() ? "" : ", lost keepers: ",
                    st.lost.empty() ? std::string() : std::to_string(st.lost.size()));
        if (old == status_.stores.end()) status_.stores.push_back(std::move(st));
        else *old = std::move(st);
        trim_next(trims, [this, alive, jobs, i, contacts] {
          if (*alive && !stopping_) sweep_store(jobs, i + 1, contacts);
        });
      });
}

void ReplicaService::sweep_done() {
  sweeping_ = false;
  ++status_.sweeps;
  if (stopping_ || interval_.count() == 0) return;
  if (again_) {
    again_ = false;
    return sweep_timer_->schedule(kSweepSoon, [this] { sweep(); });
  }
  sweep_timer_->schedule(interval_, [this] { sweep(); });
}

void ReplicaService::ask_holds(const Member& member, const std::string& store,
                               std::shared_ptr<const std::vector<KeyHeld>> keys,
                               std::function<void(std::optional<std::vector<bool>>)> done) {
  auto sources = dialable({member}, settings_.self);
  if (sources.empty()) return done(std::nullopt);
  struct Batches {
    FetchSource source;
    std::vector<bool> holds;
    std::size_t next = 0;
  };
  auto state = std::make_shared<Batches>(Batches{sources[0], {}, 0});
  auto step = std::make_shared<std::function<void()>>();
  *step = [this, alive = alive_, state, keys, store, done, weak = std::weak_ptr<std::function<void()>>(step)] {
    if (!*alive) return;
    if (state->next >= keys->size()) return done(std::move(state->holds));
    peer::Have have{1, {}, store};
    auto end = std::min(keys->size(), state->next + peer::kMaxHaveKeys);
    for (auto j = state->next; j < end; ++j) have.keys.push_back((*keys)[j].key.str());
    const auto& token = directory_.swarms()[state->source.swarm];
    auto again = weak.lock();
    pool_.ask(state->source.address, token, have, kHolderAskTimeout,
              [alive, state, done, end, count = have.keys.size(), again](Result<peer::Frame> answer) {
                if (!*alive) return;
                auto* reply = answer ? std::get_if<peer::HaveReply>(&*answer) : nullptr;
                if (!reply || reply->sizes.size() != count) return done(std::nullopt);
                for (auto size : reply->sizes) state->holds.push_back(size > 0);
                state->next = end;
                if (again) (*again)();
              });
  };
  // The step holds itself alive through the callback it hands the pool, until the last batch.
  auto keep = step;
  asio::post(io_, [keep] { (*keep)(); });
}

void ReplicaService::hand_on(std::size_t swarm, const std::string& store, const std::string& key,
                             std::vector<NodeId> chain) {
  if (chain.empty() || stopping_) return;
  const auto& token = directory_.swarms()[swarm];
  if (token.is_public()) return;
  auto node = chain.front();
  auto skip = [this, alive = alive_, swarm, store, key, chain](const std::string& why) {
    if (!*alive || stopping_) return;
    // Not asked again for a while (a sweep or two): it may be busy, out of its hours, or
    // full; the chain goes on past it, and the next sweep's plan skips it meanwhile.
    auto pause = std::max<Timers::Clock::duration>(interval_ * 3, std::chrono::seconds(10));
    quiet_until_[{key, chain.front()}] = timers_.now() + pause;
    log::info("node {} did not take {} for store {}: {}", node_short(chain.front()), key, store, why);
    hand_on(swarm, store, key, std::vector<NodeId>(chain.begin() + 1, chain.end()));
  };
  directory_.contacts({SwarmNode{swarm, node}}, [this, alive = alive_, swarm, store, key, chain,
                                                 skip](std::vector<Member> found) {
    if (!*alive || stopping_) return;
    auto sources = dialable(found, settings_.self);
    if (sources.empty()) return skip("no usable address in its contact record");
    std::string rest;
    for (std::size_t i = 1; i < chain.size(); ++i) rest += (i > 1 ? " " : "") + chain[i].hex();
    const auto& token = directory_.swarms()[swarm];
    peer::Take take{1, key, store, token.store_capability(store), rest};
    ++status_.asked;
    pool_.ask(sources[0].address, token, take, kHolderAskTimeout, [alive, skip](Result<peer::Frame> answer) {
      if (!*alive) return;
      if (!answer) return skip(answer.error());
      if (auto* e = std::get_if<peer::ErrorFrame>(&*answer)) return skip(e->message);
      if (!std::holds_alternative<peer::HaveReply>(*answer)) return skip("unexpected answer");
    });
  });
}

// A holder that is no keeper drops its copy only after `copies` keepers each answered a
// proof of possession made from this very copy: never below N, never the last copy.
void ReplicaService::trim_next(std::shared_ptr<std::vector<Trim>> trims, std::function<void()> done) {
  if (trims->empty() || stopping_) return done();
  auto trim = std::make_shared<Trim>(std::move(trims->back()));
  trims->pop_back();
  auto path = objects_.locate(trim->key.key, trim->store);
  if (!path) return trim_next(trims, std::move(done));
  // From now until it is gone or kept, this copy is shown to nobody (see leaving()).
  leaving_.insert(trim->key.key.str());
  asio::post(disk_, [this, alive = alive_, trims, trim, path = *path, done] {
    // A copy that came in lately waits: the node that asked for it may hold newer rules
    // than this node does yet, under which this node is a keeper.
    std::error_code ec;
    auto age = fs::file_time_type::clock::now() - fs::last_write_time(path, ec);
    Result<std::vector<PossessionChallenge>> challenges = Error{"the copy is too new to trim"};
    if (!ec && age >= trim->settle) challenges = make_challenges(trim->key.key.str(), path, trim->keepers.size());
    asio::post(io_, [this, alive, trims, trim, challenges, done] {
      if (!*alive || stopping_) return;
      if (!challenges || challenges->size() != trim->keepers.size()) {
        leaving_.erase(trim->key.key.str());
        return trim_next(trims, done);
      }
      gather<bool>(
          timers_, trim->keepers.size(), kHolderAskTimeout + std::chrono::seconds(5),
          [this, trim, challenges](std::size_t n, Answer<bool> answer) {
            auto sources = dialable({trim->keepers[n]}, settings_.self);
            if (sources.empty()) return answer(false);
            const auto& c = (*challenges)[n];
            peer::Prove prove{1, trim->key.key.str(), trim->store, c.nonce, c.offsets, c.lengths};
            pool_.ask(sources[0].address, directory_.swarms()[sources[0].swarm], prove, kHolderAskTimeout,
                      [answer, mac = c.mac](Result<peer::Frame> reply) {
                        auto* proof = reply ? std::get_if<peer::ProveReply>(&*reply) : nullptr;
                        answer(proof && proof->mac == mac);
                      });
          },
          [this, alive, trims, trim, done](std::vector<std::optional<bool>> proved) {
            if (!*alive || stopping_) return;
            auto count = std::count(proved.begin(), proved.end(), std::optional<bool>(true));
            if (count >= static_cast<std::ptrdiff_t>(trim->copies)) {
              auto removed = objects_.remove_from_store(trim->key.key, trim->store);
              if (!removed) log::warn("could not trim {} from store {}: {}", trim->key.key.str(), trim->store, removed.error());
              else if (*removed) {
                ++status_.trimmed;
                log::info("trimmed {} from store {}: {} of its keepers proved their copies", trim->key.key.str(),
                          trim->store, count);
              }
            }
            leaving_.erase(trim->key.key.str());
            trim_next(trims, done);
          });
    });
  });
}

// ---- TAKE ----

void ReplicaService::take(const PeerServer::ShareTake& r, TakeAnswer answer) {
  using peer::ErrorCode;
  auto refuse = [&](ErrorCode code, std::string why) { answer(PeerServer::Refusal{code, std::move(why)}); };
  const auto& token = directory_.swarms()[r.swarm];
  if (token.is_public()) return refuse(ErrorCode::NotAllowed, "nothing is replicated in the public swarm");
  if (r.take.capability != token.store_capability(r.take.store))
    return refuse(ErrorCode::NotAllowed, "no write capability for that store");
  auto key = AnnexKey::parse(r.take.key);
  if (!key || !replicable(*key)) return refuse(ErrorCode::BadKey, "not the key of a whole object");
  auto size = key->content_size();
  if (!size) return refuse(ErrorCode::BadKey, "the key names no size: keys without one are not replicated");
  auto rules = settings_.rules ? settings_.rules() : std::nullopt;
  const StoreRule* rule = nullptr;
  if (rules)
    if (auto it = rules->stores.find(r.take.store); it != rules->stores.end()) rule = &it->second;
  if (!rule || !rule->copies || *rule->copies == 0)
    return refuse(ErrorCode::NotAllowed, "the rules this node holds do not replicate store " + r.take.store);
  auto candidates = candidates_of(*rules, *rule);
  if (std::find(candidates.begin(), candidates.end(), directory_.self()) == candidates.end())
    return refuse(ErrorCode::NotAllowed, "this node is in none of the groups that keep store " + r.take.store +
                                             " (rules version " + std::to_string(rules->version) + ")");
  auto index = objects_.store(r.take.store);
  if (!index) return refuse(ErrorCode::NotAllowed, index.error());
  if (objects_.locate(*key, r.take.store)) return answer(*size + 1);
  if (fetching_.count(key->str())) return answer(std::uint64_t{0});
  if (!in_hours()) {
    auto hours = settings_.hours ? settings_.hours() : std::nullopt;
    return refuse(ErrorCode::Busy, "outside this node's hours (" + (hours ? hours->text() : std::string()) + ")");
  }
  if (fetching_.size() >= kMaxAccepted)
    return refuse(ErrorCode::Busy, std::to_string(fetching_.size()) + " replica fetches under way or waiting");
  std::uint64_t promised = 0;
  for (const auto& [k, f] : fetching_) promised += f.size;
  auto offer = settings_.store_offer ? settings_.store_offer() : 0;
  if (offer < promised || offer - promised < *size)
    return refuse(ErrorCode::Busy, "no room: this node offers " + std::to_string(offer) + " bytes (" +
                                       std::to_string(promised) + " promised), the object has " + std::to_string(*size));
  auto& wanted = wanted_[r.take.store];
  if (wanted.size() < kMaxWanted) wanted.insert(key->str());
  Fetching f;
  f.store = r.take.store;
  f.index = *index;
  f.size = *size;
  f.from = r.asker;
  f.swarm = r.swarm;
  // The rest of the chain, handed on once the fetch starts: it fetches from this node's
  // partial copy as it fills.
  std::istringstream ids(r.take.map);
  for (std::string hex; ids >> hex && f.chain.size() < kMaxChain;)
    if (auto id = NodeId::from_hex(hex); id && *id != directory_.self() && *id != r.asker) f.chain.push_back(*id);
  fetching_[key->str()] = std::move(f);
  queue_.push_back(key->str());
  answer(std::uint64_t{0});
  start_queued();
}

void ReplicaService::start_queued() {
  std::size_t running = 0;
  for (const auto& [k, f] : fetching_) running += f.started;
  while (running < kMaxFetches && !queue_.empty() && !stopping_) {
    auto key = queue_.front();
    queue_.pop_front();
    auto it = fetching_.find(key);
    if (it == fetching_.end() || it->second.started) continue;
    it->second.started = true;
    ++running;
    fetch(key);
    if (auto f = fetching_.find(key); f != fetching_.end())
      hand_on(f->second.swarm, f->second.store, key, std::move(f->second.chain));
  }
}

void ReplicaService::fetch(const std::string& key_text) {
  const auto& entry = fetching_.at(key_text);
  auto key = AnnexKey::parse(key_text).value();
  auto repo = objects_.at(entry.index);
  auto index = entry.index;
  auto size = entry.size;
  auto from = entry.from;
  // Known at once, so the next keeper of the chain is told "not yet" (Busy), never "not
  // held", while the source's address is looked up.
  fetching_.at(key_text).part = repo.path / ".replica-tmp" / (key_text + ".part");
  auto fail = [this, alive = alive_, key = key_text, store = repo.uuid, from](const std::string& why) {
    if (!*alive) return;
    fetching_.erase(key);
    ++status_.take_failures;
    log::warn("could not fetch {} for store {} from node {}: {}", key, store, node_short(from), why);
    start_queued();
  };
  directory_.contacts({SwarmNode{entry.swarm, from}}, [this, alive = alive_, key, repo, index, size, fail,
                                                       from](std::vector<Member> contacts) {
    if (!*alive || stopping_ || !fetching_.count(key.str())) return;
    auto sources = dialable(contacts, settings_.self);
    if (sources.empty()) return fail("no usable address in its contact record");
    // Named after the key, so a fetch cut short (a crash, a lost source) resumes.
    auto dest = repo.path / ".replica-tmp" / key.str();
    std::error_code ec;
    fs::create_directories(dest.parent_path(), ec);
    FetchOptions options{dest};
    options.allow_unverified = !key.checkable();
    options.on_sink = [this, alive, key = key.str()](const ObjectManifest& m, const std::vector<bool>& done) {
      if (!*alive) return;
      auto it = fetching_.find(key);
      if (it == fetching_.end()) return;
      auto full = std::make_shared<FullManifest>();
      full->size = m.size;
      full->hashes = m.hashes;
      auto root = crypto::sha256(m.hashes);
      full->root.assign(root.begin(), root.end());
      it->second.manifest = std::move(full);
      it->second.done = done;
    };
    options.on_chunk = [this, alive, key = key.str()](std::size_t chunk) {
      if (!*alive) return;
      auto it = fetching_.find(key);
      if (it != fetching_.end() && chunk < it->second.done.size()) it->second.done[chunk] = true;
    };
    options.on_chunks_bad = [this, alive, key = key.str()](const std::vector<std::size_t>& chunks) {
      if (!*alive) return;
      auto it = fetching_.find(key);
      if (it == fetching_.end()) return;
      for (auto c : chunks)
        if (c < it->second.done.size()) it->second.done[c] = false;
    };
    options.download_limit = settings_.download_limit ? settings_.download_limit() : nullptr;
    options.limits = settings_.limits;
    auto last_log = std::make_shared<Timers::Clock::time_point>(timers_.now());
    auto fetcher = std::make_shared<Fetcher>(
        io_, disk_, pool_, directory_.swarms(), key, std::move(sources), options,
        [this, alive, key = key.str(), last_log](const FetchProgress& p) {
          // Long fetches say how far they got, twice a minute at most.
          if (!*alive || timers_.now() - *last_log < std::chrono::seconds(30) || p.bytes_total == 0) return;
          *last_log = timers_.now();
          log::info("fetching {} for replication: {}% ({} of {} bytes)", key, p.bytes_done * 100 / p.bytes_total,
                    p.bytes_done, p.bytes_total);
        },
        [this, alive, key, repo, index, size, dest, fail, from](std::optional<std::string> error, FetchReport) {
          if (!*alive) return;
          // Not from inside the fetcher's own callback: it is destroyed with the entry.
          asio::post(io_, [this, alive, key, repo, index, size, dest, fail, from, error] {
            if (!*alive) return;
            if (error) return fail(*error);
            auto moved = move_into_store(repo, key, dest);
            if (!moved) return fail(moved.error());
            fetching_.erase(key.str());
            if (auto w = wanted_.find(repo.uuid); w != wanted_.end()) w->second.erase(key.str());
            ++status_.taken;
            log::info("replicated {} ({} bytes) into store {} from node {}", key.str(), size, repo.uuid, node_short(from));
            objects_.changed(index, key, true);
            start_queued();
            sweep_soon();  // this node may now hand it on to other keepers
          });
        });
    fetching_[key.str()].fetcher = fetcher;
    fetcher->start();
  });
}

}  // namespace annexswarm
