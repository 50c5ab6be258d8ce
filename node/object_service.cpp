#include "node/object_service.hpp"

#include <asio/post.hpp>

#include <limits>

#include "node/gather.hpp"
#include "node/log.hpp"
#include "node/swarm_store.hpp"

namespace annexswarm {
namespace fs = std::filesystem;

namespace {
constexpr auto kAskTimeout = std::chrono::seconds(15);

// A PRESENT verdict from its holders' answers: present when one showed it; unknown when
// nobody did but a holder could not be asked or checked.
void settle(PresentReply& reply) {
  reply.present = !reply.confirmed_by.empty();
  reply.unknown = !reply.present && (!reply.unreachable.empty() || !reply.unproven.empty());
}

ControlError no_swarm_error() {
  return {ControlErrorCode::NoSwarm, "this node is in no swarm (start it with --swarm TOKEN)"};
}
}  // namespace

ObjectService::ObjectService(asio::io_context& io, Timers& timers, asio::any_io_executor disk,
                             SwarmDirectory& directory, LocalObjects& objects, PeerPool& pool, Settings settings)
    : io_(io),
      timers_(timers),
      disk_(std::move(disk)),
      directory_(directory),
      objects_(objects),
      audits_(objects.audit_dir()),
      pool_(pool),
      settings_(std::move(settings)) {
  set_download_rate(settings_.download_rate);
}

ObjectService::~ObjectService() { *alive_ = false; }

void ObjectService::set_storage_limit(std::optional<std::uint64_t> bytes, std::string set_in) {
  storage_limit_ = bytes;
  storage_limit_from_ = std::move(set_in);
}

void ObjectService::set_download_rate(double rate) {
  settings_.download_rate = rate;
  download_limit_ = rate > 0 ? std::make_shared<RateLimiter>(rate) : nullptr;
}

DownloadLimits ObjectService::limits() const {
  DownloadLimits l;
  l.stall = settings_.stall_timeout;
  return l;
}

void ObjectService::stop() {
  auto downloads = std::move(downloads_);
  downloads_.clear();
  for (auto& [id, d] : downloads)
    if (d->fetcher) d->fetcher->cancel("the node is stopping");
  auto checks = std::move(spot_checks_);
  spot_checks_.clear();
  for (auto& [dir, fetcher] : checks) fetcher->cancel("the node is stopping");
}

void ObjectService::whereis(const WhereisRequest& request, Done<WhereisReply> done) {
  if (no_swarm()) return done(no_swarm_error());
  directory_.providers(request.key, [this, key = request.key, done](std::vector<Provider> found) {
    WhereisReply reply{key.str(), key.size(), {}};
    for (const auto& p : found) reply.providers.push_back({p.node, p.repo_uuid, directory_.swarms()[p.swarm].id()});
    done(std::move(reply));
  });
}

void ObjectService::discover(const DiscoverRequest& request, Done<DiscoverReply> done) {
  if (no_swarm()) return done(no_swarm_error());
  directory_.repo_nodes(request.uuid, [this, uuid = request.uuid, done](std::vector<SwarmNode> nodes) {
    directory_.contacts(nodes, [this, uuid, nodes, done](std::vector<Member> contacts) {
      DiscoverReply reply{uuid, {}};
      for (const auto& [si, node] : nodes) {
        NodeEndpoints entry{node, directory_.swarms()[si].id(), {}, false, false};
        for (const auto& [csi, c] : contacts) {
          if (csi != si || c.node != node) continue;
          entry.contact = true;
          entry.endpoints.insert(entry.endpoints.end(), c.endpoints.begin(), c.endpoints.end());
        }
        reply.nodes.push_back(std::move(entry));
      }
      done(std::move(reply));
    });
  });
}

void ObjectService::peers(Done<PeersReply> done) {
  if (no_swarm()) return done(PeersReply{});
  directory_.members(directory_.lookup_timeout(), [this, done](std::vector<Member> members) {
    PeersReply reply;
    for (const auto& [si, rec] : members)
      reply.peers.push_back(
          {rec.node, directory_.swarms()[si].id(), rec.endpoints, true, rec.node == directory_.self(), rec.store_offer});
    done(std::move(reply));
  });
}

void ObjectService::find_sources(const AnnexKey& key, const std::string& only_repo, const std::string& plus_nodes_of,
                                 std::function<void(std::vector<FetchSource>)> done, const std::vector<NodeId>& hints,
                                 std::shared_ptr<std::size_t> asked) {
  directory_.providers(key, [this, key, only_repo, plus_nodes_of, hints, asked, done = std::move(done)](std::vector<Provider> found) {
    auto add = [this](std::vector<SwarmNode>& nodes, std::size_t si, const NodeId& node) {
      SwarmNode n{si, node};
      if (node != directory_.self() && std::find(nodes.begin(), nodes.end(), n) == nodes.end()) nodes.push_back(n);
    };
    std::vector<SwarmNode> nodes;
    for (const auto& p : found)
      if (only_repo.empty() || p.repo_uuid == only_repo) add(nodes, p.swarm, p.node);
    // Nodes we were told hold it (before their announcement reaches the DHT), in every
    // private swarm: contacts() finds the one they are in.
    for (const auto& h : hints)
      for (std::size_t si = 0; si < directory_.swarms().size(); ++si)
        if (!directory_.swarms()[si].is_public()) add(nodes, si, h);
    auto finish = [this, key, done, asked](std::vector<SwarmNode> nodes) {
      if (asked) *asked = nodes.size();
      directory_.contacts(nodes, [this, key, count = nodes.size(), done](std::vector<Member> contacts) {
        auto sources = dialable(contacts, settings_.self);
        log::info("{}: {} node(s) to ask, {} with a usable contact record", key.str(), count, sources.size());
        done(std::move(sources));
      });
    };
    if (plus_nodes_of.empty()) return finish(std::move(nodes));
    directory_.repo_nodes(plus_nodes_of, [nodes = std::move(nodes), add, finish](std::vector<SwarmNode> serving) mutable {
      for (const auto& [si, node] : serving) add(nodes, si, node);
      finish(std::move(nodes));
    });
  });
}

void ObjectService::ask_all(const std::vector<FetchSource>& sources, const peer::Frame& request,
                            std::function<void(std::vector<std::pair<std::string, Result<peer::Frame>>>)> done) {
  ask_each(sources, [request](std::size_t) { return request; }, std::move(done));
}

void ObjectService::ask_each(const std::vector<FetchSource>& sources, std::function<peer::Frame(std::size_t)> request,
                             std::function<void(std::vector<std::pair<std::string, Result<peer::Frame>>>)> done) {
  using Answered = Result<peer::Frame>;
  gather<Answered>(
      timers_, sources.size(), kAskTimeout + std::chrono::seconds(1),
      [this, sources, request](std::size_t i, Answer<Answered> answer) {
        const auto& s = sources[i];
        pool_.ask(s.address, directory_.swarms()[s.swarm], request(i), kAskTimeout,
                  [answer](Answered a) { answer(std::move(a)); });
      },
      [sources, done = std::move(done)](std::vector<std::optional<Answered>> answers) {
        std::vector<std::pair<std::string, Answered>> out;
        for (std::size_t i = 0; i < answers.size(); ++i)
          out.emplace_back(sources[i].address.node.hex(),
                           answers[i] ? std::move(*answers[i]) : Answered(Error{"no answer in time"}));
        done(std::move(out));
      });
}

void ObjectService::copy_local(const AnnexKey& key, const fs::path& from, const fs::path& to, Done<GetReply> done) {
  // This node holds the key itself: a verified local copy, no network.
  auto started = std::chrono::steady_clock::now();
  asio::post(disk_, [this, &io = io_, alive = alive_, key, from, to, done, started] {
    auto copied = copy_verified(from, key, to, nullptr);
    asio::post(io, [this, alive, key, copied, done, started] {
      if (!*alive) return;
      if (!copied) return done(ControlError{ControlErrorCode::Failed, copied.error()});
      GetReply reply;
      reply.key = key.str();
      reply.local = true;
      reply.bytes_from[directory_.self().hex()] = *copied;
      reply.bytes_fetched = *copied;
      reply.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      done(std::move(reply));
    });
  });
}

void ObjectService::get(const GetRequest& request, ProgressFn progress, Done<GetReply> done, OnGone on_gone) {
  const auto& key = request.key;
  if (!key.checkable() && !request.unverified)
    return done(ControlError{ControlErrorCode::Unverifiable,
                             "key " + key.str() + " carries no hash, so its content cannot be verified; "
                             "pass --unverified to fetch it anyway"});
  if (auto local = objects_.locate(key, "")) return copy_local(key, *local, request.to, std::move(done));
  DownloadKey id{key.str(), request.to.string()};
  // The same key to the same file (git-annex retrying, say): join the one under way.
  bool running = downloads_.count(id) > 0;
  if (!running) downloads_[id] = std::make_shared<Download>(Download{nullptr, {}, std::chrono::steady_clock::now()});
  watch(id, std::move(progress), std::move(done), on_gone);
  if (!running) start_download(id, request);
}

void ObjectService::watch(const DownloadKey& id, ProgressFn progress, Done<GetReply> done, const OnGone& on_gone) {
  auto download = downloads_[id];
  download->watchers.push_back({std::move(progress), std::move(done), false});
  auto index = download->watchers.size() - 1;
  if (!on_gone) return;
  on_gone([this, alive = alive_, weak = std::weak_ptr<Download>(download), index, key = id.first] {
    auto d = weak.lock();
    if (!*alive || !d) return;
    d->watchers[index].gone = true;
    bool anyone = std::any_of(d->watchers.begin(), d->watchers.end(), [](const Watcher& w) { return !w.gone; });
    if (anyone) return;
    // Nobody waits for it any more: stop, keeping what came for the next try.
    log::info("get {}: every caller has gone; stopping (the partial file stays)", key);
    if (d->fetcher) d->fetcher->cancel("every caller has gone");
  });
}

void ObjectService::start_download(const DownloadKey& id, const GetRequest& request, bool second_try) {
  auto finish = [this, alive = alive_, id](Outcome<GetReply> outcome) {
    if (!*alive) return;
    auto it = downloads_.find(id);
    if (it == downloads_.end()) return;
    auto download = it->second;
    downloads_.erase(it);
    for (auto& w : download->watchers)
      if (!w.gone) w.done(outcome);
  };
  // A small object needs one source: when the repository it is asked of is known (a
  // sameas remote), its node serves it, without waiting for the key's providers.
  auto size = request.key.content_size();
  bool small = size && *size <= peer::kManifestChunk && !request.repo.empty();
  auto asked = std::make_shared<std::size_t>(0);  // nodes found to hold it
  auto lookup = [this, small, alive = alive_, hints = request.hints, asked](const AnnexKey& key, const std::string& repo,
                                                                             std::function<void(std::vector<FetchSource>)> then) {
    if (!small) return find_sources(key, "", repo, std::move(then), hints, asked);
    directory_.repo_nodes(repo, [this, alive, key, repo, then, hints, asked](std::vector<SwarmNode> nodes) {
      if (!*alive) return;
      std::erase_if(nodes, [this](const SwarmNode& n) { return n.node == directory_.self(); });
      if (nodes.empty()) return find_sources(key, "", repo, then, hints, asked);
      directory_.contacts(nodes, [this, alive, key, repo, then, hints, asked](std::vector<Member> contacts) {
        if (!*alive) return;
        auto sources = dialable(contacts, settings_.self);
        if (sources.empty()) return find_sources(key, "", repo, then, hints, asked);
        then(std::move(sources));
      });
    });
  };
  lookup(request.key, request.repo, [this, alive = alive_, id, request, finish, second_try, asked](std::vector<FetchSource> sources) {
    if (!*alive) return;
    auto it = downloads_.find(id);
    if (it == downloads_.end()) return;
    auto download = it->second;
    const auto& key = request.key;
    if (std::all_of(download->watchers.begin(), download->watchers.end(), [](const Watcher& w) { return w.gone; }))
      return finish(ControlError{ControlErrorCode::Failed, "cancelled: every caller has gone"});
    if (sources.empty()) {
      // Holders found, but none with a usable contact record: one that just started, or
      // lookups slowed by a busy machine (its contact record may be a moment behind its
      // provider record). Look again (1 s, then 2 s) before giving up. Nobody holding it
      // at all: once more after 1 s (a lookup can miss a record for a moment, say while
      // the node that put it restarts), then fail.
      if ((*asked > 0 && download->empty_lookups < 2) || (*asked == 0 && !request.absent_is_final && download->empty_lookups < 1)) {
        auto wait = std::chrono::seconds(1 << download->empty_lookups);
        ++download->empty_lookups;
        log::info("get {}: no reachable node has it yet; looking again in {} s", key.str(), wait.count());
        download->lookup_again = timers_.make_timer();
        download->lookup_again->schedule(wait, [this, alive, id, request, second_try] {
          if (*alive && downloads_.count(id)) start_download(id, request, second_try);
        });
        return;
      }
      return finish(ControlError{ControlErrorCode::NotFound, "no reachable node has " + key.str()});
    }
    auto started = download->started;
    download->fetcher = std::make_shared<Fetcher>(
        io_, disk_, pool_, directory_.swarms(), key, std::move(sources),
        FetchOptions{request.to, request.unverified, 4, 16, download_limit_, limits(), request.only_chunks,
                     request.on_chunk, {}, {}, request.in_order},
        [weak = std::weak_ptr<Download>(download), in_order = request.in_order](const FetchProgress& p) {
          auto d = weak.lock();
          if (!d) return;
          Progress out{p.bytes_done, p.bytes_total, std::nullopt, p.peers, p.stalled_seconds, p.waiting, p.waiting_why};
          if (in_order) out.prefix = p.prefix_bytes;
          for (auto& w : d->watchers)
            if (!w.gone) w.progress(out);
        },
        [this, alive = alive_, id, request, started, finish, second_try](std::optional<std::string> error,
                                                                         FetchReport report) {
          const auto& key = request.key;
          GetReply reply;
          reply.key = key.str();
          reply.bytes_from = report.bytes_from;
          reply.dropped = report.dropped;
          reply.paths = report.paths;
          reply.redialled = report.redialled;
          reply.bytes_fetched = report.bytes_fetched;
          reply.bytes_resumed = report.bytes_resumed;
          reply.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
          reply.error = error;
          for (const auto& [node, why] : report.dropped) log::warn("get {}: dropped peer {}: {}", key.str(), node, why);
          // Where a peer could not be reached, its contact record is read afresh next time.
          // If it was remembered from an earlier lookup, "next time" is now: once.
          // (Only a peer never reached: one that answered, if only "not here", was found.)
          bool stale = false;
          for (const auto& [node, why] : report.dropped)
            if (auto peer = NodeId::from_hex(node)) {
              bool never_reached = !report.paths.count(node);
              stale = stale || (never_reached && directory_.answered_from_cache(*peer));
              directory_.forget_contact(*peer);
            }
          if (error && stale && !second_try) {
            log::info("get {}: peers unreachable at the addresses remembered from an earlier lookup; "
                      "reading their contact records afresh and trying again", key.str());
            return asio::post(io_, [this, alive, id, request] {
              if (!*alive) return;
              auto it = downloads_.find(id);
              if (it == downloads_.end()) return;
              it->second->fetcher.reset();
              start_download(id, request, true);
            });
          }
          finish(std::move(reply));
        });
    download->fetcher->start();
  });
}

void ObjectService::store(const StoreRequest& request, ProgressFn progress, Done<StoreReply> done) {
  auto index = objects_.store(request.store);
  if (!index) return done(ControlError{ControlErrorCode::NotAStore, index.error()});
  auto repo = objects_.at(*index);
  asio::post(disk_, [this, &io = io_, alive = alive_, request, repo, index = *index, progress, done,
                     limit = storage_limit_, limit_from = storage_limit_from_] {
    // Objects in the trash give way to a new one when space runs out, oldest first.
    std::error_code ec;
    auto size = request.key.content_size();
    if (!size) {
      auto bytes = std::filesystem::file_size(request.file, ec);
      if (!ec) size = bytes;
    }
    if (limit && !std::filesystem::exists(store_object_path(repo, request.key), ec)) {
      // What every swarm store here holds (they share the limit), against what the user allows.
      auto used = bytes_below(repo.path.parent_path());
      if (used > *limit || size.value_or(0) > *limit - used) {
        auto why = "this node's storage limit is " + std::to_string(*limit) + " bytes (" + limit_from +
                   "); its swarm stores hold " + std::to_string(used) + " and " + request.key.str() + " has " +
                   std::to_string(size.value_or(0));
        return asio::post(io, [alive, why, done] {
          if (*alive) done(ControlError{ControlErrorCode::Failed, why});
        });
      }
    }
    auto trash = objects_.trash_dir();
    std::size_t purged = 0;
    if (size)
      purged = purge_trash_for_space(trash, *size + (1u << 20), [at = trash.parent_path()] {
        std::error_code sec;
        auto space = std::filesystem::space(at, sec);
        return sec ? std::numeric_limits<std::uint64_t>::max() : static_cast<std::uint64_t>(space.available);
      });
    auto last = std::make_shared<std::chrono::steady_clock::time_point>();
    auto imported = import_into_store(repo, request.key, request.file, [&io, alive, progress, last](std::uint64_t bytes) {
      auto now = std::chrono::steady_clock::now();
      if (now - *last < std::chrono::milliseconds(200)) return;
      *last = now;
      asio::post(io, [alive, progress, bytes] {
        if (*alive) progress({bytes, std::nullopt, std::nullopt});
      });
    });
    // Audits made now, from the bytes just stored, let this node check other holders of
    // the store later without a copy of its own.
    Result<bool> audited = true;
    if (imported) audited = audits_.record(repo.uuid, request.key, store_object_path(repo, request.key));
    asio::post(io, [this, alive, key = request.key, imported, audited, purged, index, done] {
      if (!*alive) return;
      if (purged) log::info("space ran out: {} object(s) taken from the trash before their grace period ended", purged);
      if (!imported) return done(ControlError{ControlErrorCode::Failed, imported.error()});
      if (!audited) log::warn("stored {}, but could not keep audits of it: {}", key.str(), audited.error());
      log::info("stored {} in swarm store {}", key.str(), objects_.at(index).uuid);
      objects_.changed(index, key, true);
      done(StoreReply{key.str(), *imported});
    });
  });
}

void ObjectService::present(const PresentRequest& request, Done<PresentReply> done) {
  // Only copies in that repository or swarm store count, and only when the node holding
  // it shows it now: a DHT record may be up to an hour old, and a member may lie. A holder
  // counts when it answers a proof-of-possession challenge: one made from the asker's own
  // copy (before a drop), or else one of the audits this node kept when it stored the key.
  // With neither, only a holder pinned for the repository counts, on its word; anyone
  // else's "yes" makes the answer unknown, never present.
  PresentReply mine;
  if (objects_.locate(request.key, request.repo)) {
    mine.present = true;
    mine.confirmed_by.push_back(directory_.self().hex());
    return done(std::move(mine));
  }
  find_sources(request.key, request.repo, request.repo, [this, alive = alive_, request, done](std::vector<FetchSource> sources) {
    if (!*alive) return;
    std::vector<std::optional<PossessionChallenge>> challenges(sources.size());
    for (std::size_t i = 0; i < sources.size(); ++i) {
      if (!request.challenges.empty()) challenges[i] = request.challenges[i % request.challenges.size()];
      else if (!request.repo.empty() && request.spend_audits) challenges[i] = audits_.take(request.repo, request.key);
    }
    // A share with nothing to challenge its holders with (asked from another clone than
    // the uploader's, or the uploader's audits spent): each holder shows a random chunk.
    if (request.key.is_share() && std::none_of(challenges.begin(), challenges.end(), [](const auto& c) { return c.has_value(); }) &&
        request.pinned.empty())
      return spot_check(request.key, std::move(sources), done);
    auto ask = [request, challenges](std::size_t i) -> peer::Frame {
      if (!challenges[i]) return peer::Have{1, {request.key.str()}, request.repo};
      const auto& c = *challenges[i];
      return peer::Prove{1, request.key.str(), request.repo, c.nonce, c.offsets, c.lengths};
    };
    ask_each(sources, ask, [this, alive, request, challenges, done](auto answers) {
      if (!*alive) return;
      PresentReply reply;
      // An empty object is known from its key alone: any holder's word will do.
      bool empty = request.key.content_size() == std::optional<std::uint64_t>(0);
      for (std::size_t i = 0; i < answers.size(); ++i) {
        const auto& [node, answer] = answers[i];
        bool pinned = std::find(request.pinned.begin(), request.pinned.end(), node) != request.pinned.end();
        if (!answer) {
          reply.unreachable[node] = answer.error();
        } else if (auto* proof = std::get_if<peer::ProveReply>(&*answer); proof && challenges[i]) {
          if (proof->mac == challenges[i]->mac) {
            reply.confirmed_by.push_back(node);
          } else {
            reply.unproven[node] = "its answer to a proof of possession does not match the object";
            log::warn("node {} says it holds {} but failed a proof of possession: not counted", node, request.key.str());
          }
        } else if (auto* have = std::get_if<peer::HaveReply>(&*answer)) {
          bool says_yes = have->sizes.size() == 1 && have->sizes[0] > 0;
          if (says_yes && (pinned || empty)) reply.confirmed_by.push_back(node);
          else if (says_yes) reply.unproven[node] = "says it holds it; nothing here to check that against";
        } else if (auto* e = std::get_if<peer::ErrorFrame>(&*answer)) {
          if (e->code != peer::ErrorCode::NotPresent) reply.unreachable[node] = e->message;
        } else {
          reply.unreachable[node] = "unexpected answer";
        }
      }
      settle(reply);
      done(std::move(reply));
    });
  }, request.hints);
}

void ObjectService::spot_check(const AnnexKey& key, std::vector<FetchSource> sources, Done<PresentReply> done) {
  if (sources.empty()) return done(PresentReply{});
  auto chunks = std::max<std::uint64_t>(1, peer::chunk_count(key.content_size().value_or(0), peer::kManifestChunk));
  auto reply = std::make_shared<PresentReply>();
  auto pending = std::make_shared<std::size_t>(sources.size());
  auto base = settings_.scratch.empty() ? fs::temp_directory_path() / "annex-swarm-spot-checks" : settings_.scratch;
  for (auto& source : sources) {
    auto node = source.address.node.hex();
    std::uint64_t pick = 0;
    crypto::random_fill(MutableByteView(reinterpret_cast<std::uint8_t*>(&pick), sizeof pick));
    std::vector<bool> only(chunks, false);
    only[pick % chunks] = true;
    Bytes name(8);
    crypto::random_fill(name);
    auto dir = base / to_hex(name);
    std::error_code ec;
    fs::create_directories(dir, ec);
    FetchOptions options{dir / "share", false, 1, 1, download_limit_, limits(), std::move(only)};
    auto fetcher = std::make_shared<Fetcher>(
        io_, disk_, pool_, directory_.swarms(), key, std::vector<FetchSource>{std::move(source)}, std::move(options),
        [](const FetchProgress&) {},
        [this, alive = alive_, dir, node, key, reply, pending, done](std::optional<std::string> error, FetchReport report) {
          if (!*alive) return;
          std::error_code ec;
          fs::remove_all(dir, ec);
          asio::post(io_, [this, alive, dir] {  // not from inside the fetcher's own callback
            if (*alive) spot_checks_.erase(dir.string());
          });
          auto why = report.dropped.count(node) ? report.dropped[node] : error.value_or("");
          if (!error) {
            reply->confirmed_by.push_back(node);
          } else if (report.absent.count(node)) {
            // It does not hold it: absent, not unknown.
          } else if (report.bad_data.count(node)) {
            reply->unproven[node] = "its share does not match the key: " + why;
            log::warn("node {} says it holds {} but sent data that fails its check: not counted", node, key.str());
          } else {
            reply->unreachable[node] = why;
          }
          if (--*pending != 0) return;
          settle(*reply);
          done(std::move(*reply));
        });
    spot_checks_[dir.string()] = fetcher;
    fetcher->start();
  }
}

void ObjectService::remove(const RemoveRequest& request, Done<RemoveReply> done) {
  if (auto index = objects_.index_of(request.store)) {
    if (!objects_.at(*index).store)
      return done(ControlError{ControlErrorCode::NotAStore,
                               request.store + " is an annex repository; drop from it with git annex drop"});
    if (auto r = objects_.remove_from_store(request.key, request.store); !r)
      return done(ControlError{ControlErrorCode::Failed, r.error()});
  }
  audits_.forget(request.store, request.key);  // git-annex no longer counts this remote's copies
  // Every other node whose record says its store holds the key removes it too.
  find_sources(request.key, request.store, "", [this, request, done](std::vector<FetchSource> sources) {
    auto remove = [this, request, sources](std::size_t i) -> peer::Frame {
      const auto& token = directory_.swarms()[sources[i].swarm];
      return peer::Remove{1, request.key.str(), request.store, token.store_capability(request.store)};
    };
    ask_each(sources, remove, [done](auto answers) {
      RemoveReply reply;
      for (const auto& [node, answer] : answers) {
        if (answer && std::holds_alternative<peer::HaveReply>(*answer)) reply.removed_from.push_back(node);
        else if (!answer) reply.failed[node] = answer.error();
        else if (auto* e = std::get_if<peer::ErrorFrame>(&*answer)) reply.failed[node] = e->message;
      }
      done(std::move(reply));
    });
  }, request.hints);
}

}  // namespace annexswarm
