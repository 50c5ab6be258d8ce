#include "node/share_service.hpp"

#include <asio/post.hpp>

#include <fstream>
#include <set>
#include <sstream>

#include "erasure/placement.hpp"
#include "node/gather.hpp"
#include "node/log.hpp"
#include "node/swarm_store.hpp"
#include "protocol/crypto.hpp"

namespace annexswarm {
namespace fs = std::filesystem;
using erasure::ShareMap;

namespace {

std::string random_name() {
  Bytes b(6);
  crypto::random_fill(b);
  return to_hex(b);
}

// Long enough for a holder to fetch a share over a slow home uplink (2 MB/s).
std::chrono::milliseconds take_timeout(std::uint64_t share_bytes) {
  return std::chrono::seconds(60) + std::chrono::milliseconds(share_bytes / 2000);
}

// The text of a share map kept in the file at `path`.
Result<std::string> read_map_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot read " + path.string()};
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().size() > peer::kMaxShareMapText) return Error{"the share map is oversized"};
  return ss.str();
}

// The share map of `key` in the file at `path`.
Result<std::optional<ShareMap>> read_map(const fs::path& path, const AnnexKey& key) {
  auto text = read_map_text(path);
  if (!text) return Error{text.error()};
  auto map = ShareMap::parse(*text, key);
  if (!map) return Error{map.error()};
  return std::optional<ShareMap>(std::move(*map));
}

// Writes the map into the store (once) as the object of its map key.
Result<bool> keep_map(const AnnexRepo& store, const ShareMap& map, const fs::path& scratch) {
  auto key = ShareMap::map_key(map.key);
  std::error_code ec;
  if (fs::exists(store_object_path(store, key), ec)) return false;
  fs::create_directories(scratch, ec);
  auto tmp = scratch / ("map-" + random_name());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << map.text();
    out.flush();
    if (!out) return Error{"cannot write " + tmp.string() + " (disk full?)"};
  }
  return move_into_store(store, key, tmp);
}


}  // namespace

// A store under way: the encoded object, its shares in our store, where they go.
struct ShareService::Placed {
  StoreRequest request;
  std::size_t index = 0;  // of the store in LocalObjects
  ShareMap map;
};

ShareService::ShareService(asio::io_context& io, Timers& timers, asio::any_io_executor disk,
                           SwarmDirectory& directory, LocalObjects& objects, PeerPool& pool,
                           ObjectService& object_service, Settings settings)
    : io_(io),
      timers_(timers),
      disk_(std::move(disk)),
      directory_(directory),
      objects_(objects),
      pool_(pool),
      object_service_(object_service),
      settings_(std::move(settings)) {}

ShareService::~ShareService() { *alive_ = false; }

std::chrono::milliseconds ShareService::fan_out_deadline() const {
  // A backstop: each share's present or remove looks up its providers and their contact
  // records, then asks them (15 s), and ends by itself well within this.
  return 2 * directory_.lookup_timeout() + std::chrono::seconds(30);
}

fs::path ShareService::scratch(const std::string& store) const {
  // A store this node does not serve (whereis reading its map): the system's temporary files.
  auto index = objects_.index_of(store);
  if (!index) return fs::temp_directory_path() / "annex-swarm-shares";
  return objects_.at(*index).path / ".shares-tmp";
}

// ---- store ----

void ShareService::store(const StoreRequest& request, ProgressFn progress, Done<StoreReply> done) {
  auto index = objects_.store(request.store);
  if (!index) return done(ControlError{ControlErrorCode::NotAStore, index.error()});
  auto repo = objects_.at(*index);
  auto dir = scratch(request.store) / random_name();
  asio::post(disk_, [this, &io = io_, alive = alive_, request, repo, index = *index, dir, progress, done] {
    auto fail = [&](std::string why) {
      std::error_code ec;
      fs::remove_all(dir, ec);
      asio::post(io, [alive, why = std::move(why), done] {
        if (*alive) done(ControlError{ControlErrorCode::Failed, why});
      });
    };
    std::error_code ec;
    auto size = fs::file_size(request.file, ec);
    if (ec) return fail("cannot read " + request.file.string() + ": " + ec.message());
    if (auto expected = request.key.content_size(); expected && *expected != size)
      return fail("the file has " + std::to_string(size) + " bytes, the key says " + std::to_string(*expected));
    auto layout = erasure::ShareLayout::plan(*request.shares, size);
    fs::create_directories(dir, ec);
    if (ec) return fail("cannot make " + dir.string() + ": " + ec.message());
    std::vector<fs::path> files;
    for (unsigned i = 0; i < layout.shape.n(); ++i) files.push_back(dir / std::to_string(i));
    auto last = std::make_shared<std::chrono::steady_clock::time_point>();
    auto digests = erasure::encode_object(request.file, layout, files, [&io, alive, progress, last](std::uint64_t bytes) {
      auto now = std::chrono::steady_clock::now();
      if (now - *last < std::chrono::milliseconds(200)) return;
      *last = now;
      asio::post(io, [alive, progress, bytes] {
        if (*alive && progress) progress({bytes, std::nullopt, std::nullopt});
      });
    });
    if (!digests) return fail("cannot encode the object into shares: " + digests.error());
    auto map = ShareMap::of(request.key, layout, *digests);
    // Into the store as objects (not announced): the peer server serves them to their
    // holders. Audits of each, made now, check the holders later.
    for (unsigned i = 0; i < layout.shape.n(); ++i) {
      auto moved = move_into_store(repo, map.shares[i], files[i]);
      if (!moved) return fail(moved.error());
      auto audited = object_service_.audits().record(repo.uuid, map.shares[i], store_object_path(repo, map.shares[i]));
      if (!audited) log::warn("could not keep audits of share {} of {}: {}", i, request.key.str(), audited.error());
    }
    fs::remove_all(dir, ec);
    auto placed = std::make_shared<Placed>();
    placed->request = request;
    placed->index = index;
    placed->map = std::move(map);
    asio::post(io, [this, alive, placed, done] {
      if (*alive) place(placed, done);
    });
  });
}

// Shares go to the members ranked for the key, best first; a member that does not take
// its share (gone since its record was written, full, unreachable) passes it to the next
// one in the ranking, so a dead node with a fresh record does not fail the store.
struct ShareService::TakeRound {
  std::string store;
  std::size_t index = 0;  // of the store in LocalObjects
  ShareMap map;           // its holders filled in as shares are taken
  std::vector<NodeId> ranked;
  std::size_t next = 0;   // the next member of `ranked` to ask
  std::map<NodeId, Member> members;
  std::map<unsigned, NodeId> placed;
  std::map<unsigned, std::string> failed;
  std::map<unsigned, std::string> tried;  // share -> what the members asked said
  std::vector<unsigned> shares;           // the shares this round places
  std::size_t waiting = 0;
  std::function<void()> done;             // after settle_round
};

void ShareService::take_round(std::shared_ptr<TakeRound> round, const std::vector<unsigned>& shares) {
  round->shares = shares;
  round->waiting = shares.size();
  if (shares.empty()) {
    settle_round(*round);
    return round->done();
  }
  // The j-th share to place goes to the j-th ranked member; fallbacks go on from there.
  round->next = std::min(shares.size(), round->ranked.size());
  for (std::size_t j = 0; j < shares.size(); ++j)
    offer_share(round, shares[j], j < round->ranked.size() ? std::optional<NodeId>(round->ranked[j]) : std::nullopt);
}

// Shares of the round that another node keeps (or none does) leave our store: they were
// never announced. The map this node keeps names the holders now: it answers for the
// object at once, before the holders' announcements reach the DHT.
void ShareService::settle_round(const TakeRound& round) {
  auto repo = objects_.at(round.index);
  std::error_code ec;
  for (auto s : round.shares)
    if (auto it = round.placed.find(s); it == round.placed.end() || it->second != directory_.self())
      fs::remove(store_object_path(repo, round.map.shares[s]), ec);
  auto map_key = ShareMap::map_key(round.map.key);
  fs::remove(store_object_path(repo, map_key), ec);
  if (auto kept = keep_map(repo, round.map, scratch(round.store)); !kept)
    log::warn("could not keep the share map of {}: {}", round.map.key.str(), kept.error());
  else
    objects_.changed(round.index, map_key, true);
}

void ShareService::offer_share(std::shared_ptr<TakeRound> round, unsigned share, std::optional<NodeId> first) {
  auto finish = [this, alive = alive_, round] {
    if (!*alive || --round->waiting > 0) return;
    settle_round(*round);
    round->done();
  };
  if (!first && round->next >= round->ranked.size()) {
    auto why = round->tried.count(share) ? round->tried[share] + "; no other member with room" : std::string(
        "no member with room that holds none of this object's shares");
    round->failed[share] = why;
    return finish();
  }
  auto holder = first ? *first : round->ranked[round->next++];
  const auto& key = round->map.shares[share];
  if (holder == directory_.self()) {
    round->placed[share] = holder;
    round->map.holders[share] = holder;
    objects_.changed(round->index, key, true);
    return finish();
  }
  auto sources = dialable({round->members[holder]}, settings_.self);
  if (sources.empty()) {
    round->tried[share] += (round->tried[share].empty() ? "" : "; ") + node_short(holder) + ": no usable address";
    return offer_share(round, share, std::nullopt);
  }
  round->map.holders[share] = holder;
  const auto& token = directory_.swarms()[sources[0].swarm];
  peer::Take take{1, key.str(), round->store, token.store_capability(round->store), round->map.text()};
  pool_.ask(sources[0].address, token, take, take_timeout(*key.content_size()),
            [this, alive = alive_, round, share, holder, finish](Result<peer::Frame> answer) {
              if (!*alive) return;
              std::optional<std::string> why;
              if (!answer) why = answer.error();
              else if (auto* e = std::get_if<peer::ErrorFrame>(&*answer)) why = e->message;
              else if (!std::holds_alternative<peer::HaveReply>(*answer)) why = "unexpected answer";
              if (!why) {
                round->placed[share] = holder;
                return finish();
              }
              log::warn("{}: node {} did not take share {} ({}); asking the next member", round->map.key.str(),
                        node_short(holder), share, *why);
              round->map.holders[share].reset();
              auto& tried = round->tried[share];
              tried += (tried.empty() ? "" : "; ") + node_short(holder) + ": " + *why;
              offer_share(round, share, std::nullopt);
            });
}

void ShareService::place(std::shared_ptr<Placed> placed, Done<StoreReply> done) {
  directory_.members(directory_.lookup_timeout(), [this, alive = alive_, placed, done](std::vector<Member> members) {
    if (!*alive) return;
    const auto& layout = placed->map.layout;
    const auto self = directory_.self();
    const auto n = layout.shape.n(), k = layout.shape.k;
    auto round = std::make_shared<TakeRound>();
    round->store = placed->request.store;
    round->index = placed->index;
    round->map = placed->map;
    round->map.holders.assign(n, std::nullopt);
    std::vector<erasure::StoreOffer> offers{{self, settings_.store_offer ? settings_.store_offer() : 0}};
    for (const auto& m : members) {
      if (directory_.swarms()[m.swarm].is_public() || m.contact.node == self || round->members.count(m.contact.node)) continue;
      round->members[m.contact.node] = m;
      offers.push_back({m.contact.node, m.contact.store_offer});
    }
    round->ranked = erasure::place_shares(round->map.key.str(), offers, offers.size(), layout.share_size());
    auto repo = objects_.at(placed->index);
    if (round->ranked.size() < k + 1) {
      for (const auto& key : round->map.shares) {
        std::error_code ec;
        fs::remove(store_object_path(repo, key), ec);
      }
      return done(ControlError{
          ControlErrorCode::Failed,
          "found " + std::to_string(round->ranked.size()) + " member(s) offering room for a share of " +
              std::to_string(layout.share_size()) + " bytes; shares=" + layout.shape.text() + " needs " +
              std::to_string(n) + " (" + std::to_string(k + 1) +
              " at the very least); start more nodes or give them room (store-space)"});
    }
    if (round->ranked.size() < n)
      log::warn("{}: only {} members have room for {} shares; the rest wait for repair", round->map.key.str(),
                round->ranked.size(), n);
    std::vector<unsigned> shares;
    for (unsigned i = 0; i < n && i < round->ranked.size(); ++i) shares.push_back(i);
    round->done = [round, done, n] {
      const auto& key = round->map.key;
      std::string why;
      for (const auto& [share, reason] : round->failed)
        why += (why.empty() ? "" : "; ") + std::string("share ") + std::to_string(share) + ": " + reason;
      if (round->placed.size() < std::min<std::size_t>(n, round->ranked.size())) {
        log::warn("store {}: {} of {} shares kept; {}", key.str(), round->placed.size(), n, why);
        return done(ControlError{ControlErrorCode::Failed, "not every share was taken (" + why + ")"});
      }
      log::info("stored {} as {} shares on {} members", key.str(), round->map.layout.shape.text(), round->placed.size());
      done(StoreReply{key.str(), round->map.layout.object_size});
    };
    take_round(round, shares);
  });
}

// ---- take (a holder's side) ----

void ShareService::take(const PeerServer::ShareTake& r, TakeAnswer answer) {
  using peer::ErrorCode;
  auto refuse = [&](ErrorCode code, std::string why) {
    log::warn("refused to take share {} for node {}: {}", r.take.key, r.asker.hex(), why);
    answer(PeerServer::Refusal{code, std::move(why)});
  };
  const auto& token = directory_.swarms()[r.swarm];
  if (token.is_public()) return refuse(ErrorCode::NotAllowed, "no shares are kept for the public swarm");
  if (r.take.capability != token.store_capability(r.take.store))
    return refuse(ErrorCode::NotAllowed, "no write capability for that store");
  auto key = AnnexKey::parse(r.take.key);
  if (!key || !key->is_share()) return refuse(ErrorCode::BadKey, "not a share key");
  auto map = ShareMap::parse_any(r.take.map);
  if (!map) return refuse(ErrorCode::BadFrame, "bad share map: " + map.error());
  if (!map->index_of(*key)) return refuse(ErrorCode::BadKey, "the share is not in the map sent with it");
  auto index = objects_.store(r.take.store);
  if (!index) return refuse(ErrorCode::NotAllowed, index.error());
  auto repo = objects_.at(*index);
  auto size = *key->content_size();
  auto keep = [this, repo, index = *index, map = *map, key = *key, answer, size] {
    auto kept = keep_map(repo, map, scratch(repo.uuid));
    if (!kept) return answer(PeerServer::Refusal{peer::ErrorCode::Internal, kept.error()});
    objects_.changed(index, key, true);
    objects_.changed(index, ShareMap::map_key(map.key), true);
    answer(size);
  };
  if (objects_.locate(*key, r.take.store)) return keep();  // asked again (a retried store)
  auto offer = settings_.store_offer ? settings_.store_offer() : 0;
  if (offer < size)
    return refuse(ErrorCode::Busy, "no room: this node offers " + std::to_string(offer) + " bytes, the share has " +
                                       std::to_string(size));
  directory_.contacts({SwarmNode{r.swarm, r.asker}}, [this, alive = alive_, r, key = *key, repo, keep,
                                                       answer](std::vector<Member> contacts) {
    if (!*alive) return;
    auto sources = dialable(contacts, settings_.self);
    if (sources.empty())
      return answer(PeerServer::Refusal{peer::ErrorCode::Internal, "cannot reach you: no usable address in your contact record"});
    auto dest = scratch(repo.uuid) / ("take-" + random_name());
    std::error_code ec;
    fs::create_directories(dest.parent_path(), ec);
    auto fetcher = std::make_shared<Fetcher>(
        io_, disk_, pool_, directory_.swarms(), key, std::move(sources), FetchOptions{dest},
        [](const FetchProgress&) {},
        [this, alive, dest, key, repo, keep, answer](std::optional<std::string> error, FetchReport) {
          if (!*alive) return;
          // Not from inside the fetcher's own callback.
          asio::post(io_, [this, alive, dest] {
            if (*alive) takes_.erase(dest.string());
          });
          std::error_code ec;
          if (error) {
            fs::remove(dest, ec);
            return answer(PeerServer::Refusal{peer::ErrorCode::Internal, "could not fetch the share: " + *error});
          }
          auto moved = move_into_store(repo, key, dest);
          if (!moved) return answer(PeerServer::Refusal{peer::ErrorCode::Internal, moved.error()});
          log::info("took share {} into swarm store {}", key.str(), repo.uuid);
          keep();
        });
    takes_[dest.string()] = fetcher;
    fetcher->start();
  });
}

// ---- get, present, remove ----

void ShareService::find_map(const AnnexKey& key, const std::string& store,
                            std::function<void(Result<std::optional<ShareMap>>)> done) {
  auto map_key = ShareMap::map_key(key);
  if (auto local = objects_.locate(map_key, store)) return done(read_map(*local, key));
  auto dest = scratch(store) / ("map-" + random_name());
  std::error_code ec;
  fs::create_directories(dest.parent_path(), ec);
  GetRequest get{map_key, dest, true, store, std::nullopt, {}};
  get.absent_is_final = true;
  object_service_.get(get, [](const Progress&) {}, [key, dest, done](Outcome<GetReply> outcome) {
    std::error_code ec;
    auto* error = std::get_if<ControlError>(&outcome);
    if (error && error->code == ControlErrorCode::NotFound) return done(std::optional<ShareMap>());
    if (error) return done(Error{error->message});
    const auto& reply = std::get<GetReply>(outcome);
    if (reply.error) {
      fs::remove(dest, ec);
      // Every node that announced it says it does not hold it (any more): there is none.
      bool all_absent = !reply.dropped.empty() && std::all_of(reply.dropped.begin(), reply.dropped.end(), [](const auto& d) {
        return d.second.starts_with("does not hold the object");
      });
      if (all_absent) return done(std::optional<ShareMap>());
      return done(Error{"cannot fetch the share map: " + *reply.error});
    }
    auto map = read_map(dest, key);
    fs::remove(dest, ec);
    done(std::move(map));
  });
}

// A get in progress: every share fetched at once, each for the segments the plan gives it,
// so the download uses every holder's upload; the object is rebuilt in order while the
// shares come, one segment as soon as K of its units are in. A share that fails has its
// segments planned again on the others (one more round).
struct ShareService::Rebuild {
  GetRequest request;
  ShareMap map;
  fs::path dir;
  fs::path part;                          // the object, being rebuilt
  std::vector<std::vector<int>> where;    // [share][segment]: the round whose file holds it; -1: none
  std::vector<unsigned> arrived;          // [segment]: units in
  std::vector<bool> usable;               // share not failed yet
  int round = 0;
  std::size_t running = 0;                // share fetches under way
  std::uint64_t next = 0;                 // segments written
  std::uint64_t settled = 0;              // segments written or being written: never asked again
  bool writing = false;                   // segments on the disk worker now
  std::vector<std::function<void()>> cancels;  // of the share fetches, when the get gives up
  bool ended = false;
  bool direct = false;                    // part is the destination itself
  std::optional<ContentHash> hash;        // fed in order on the disk worker
  std::unique_ptr<erasure::ObjectRebuilder> writer;  // used on the disk worker only
  std::map<std::pair<unsigned, int>, std::uint64_t> bytes;  // (share, round) -> fetched, for progress
  GetReply reply;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  fs::path file(unsigned share, int in_round) const {
    return dir / (std::to_string(share) + "." + std::to_string(in_round));
  }
};

void ShareService::get(const GetRequest& request, ProgressFn progress, Done<GetReply> caller_done) {
  // One get into a file at a time (git-annex retrying would otherwise have two write it).
  auto to = request.to.string();
  if (!gets_into_.insert(to).second)
    return caller_done(ControlError{ControlErrorCode::Failed, "a get into " + to + " is under way already"});
  Done<GetReply> done = [this, alive = alive_, to, caller_done](Outcome<GetReply> outcome) {
    if (*alive) gets_into_.erase(to);
    caller_done(std::move(outcome));
  };
  find_map(request.key, request.repo, [this, alive = alive_, request, progress, done](Result<std::optional<ShareMap>> map) {
    if (!*alive) return;
    if (!map) return done(ControlError{ControlErrorCode::Failed, map.error()});
    if (!*map) return done(ControlError{ControlErrorCode::NotFound, "no member keeps shares of " + request.key.str()});
    auto job = std::make_shared<Rebuild>();
    job->request = request;
    job->map = std::move(**map);
    const auto& layout = job->map.layout;
    const auto n = layout.shape.n();
    job->dir = scratch(request.repo) / ("get-" + random_name());
    // Written strictly in order, the object goes straight into the file asked for, where
    // git-annex hashes it as it grows (no second pass over it at the end); a file there
    // already (a retry) is left alone until the rebuilt object replaces it.
    std::error_code exists_ec;
    auto there = fs::symlink_status(request.to, exists_ec);
    job->direct = there.type() == fs::file_type::not_found ||
                  (there.type() == fs::file_type::regular && fs::file_size(request.to, exists_ec) == 0);
    job->part = request.to;
    if (!job->direct) job->part += ".part";
    job->where.assign(n, std::vector<int>(layout.segments(), -1));
    job->arrived.assign(layout.segments(), 0);
    job->usable.assign(n, true);
    job->reply.key = request.key.str();
    if (request.key.verifiable()) job->hash = ContentHash::start(request.key.hash());
    asio::post(disk_, [this, alive, job, progress, done] {
      std::error_code ec;
      fs::create_directories(job->dir, ec);
      auto writer = erasure::ObjectRebuilder::open(job->map.layout, job->part, job->hash ? &*job->hash : nullptr);
      asio::post(io_, [this, alive, job, progress, done, writer = std::move(writer)]() mutable {
        if (!*alive) return;
        if (!writer) return get_failed(job, writer.error(), done);
        job->writer = std::move(*writer);
        get_round(job, progress, done);
      });
    });
  });
}

void ShareService::get_failed(std::shared_ptr<Rebuild> job, const std::string& why, Done<GetReply> done) {
  if (job->ended) return;
  job->ended = true;
  // Share fetches still under way stop (nobody waits for them any more).
  for (auto& gone : std::exchange(job->cancels, {})) gone();
  asio::post(disk_, [this, alive = alive_, job, why, done] {
    job->writer.reset();
    std::error_code ec;
    fs::remove(job->part, ec);
    fs::remove_all(job->dir, ec);
    asio::post(io_, [alive, why, done] {
      if (*alive) done(ControlError{ControlErrorCode::Failed, why});
    });
  });
}

void ShareService::get_round(std::shared_ptr<Rebuild> job, ProgressFn progress, Done<GetReply> done) {
  if (job->ended) return;
  const auto& layout = job->map.layout;
  const auto n = layout.shape.n();
  erasure::HeldSegments held(n);
  for (unsigned i = 0; i < n; ++i) {
    held[i].assign(layout.segments(), false);
    // Segments written (or being written) need nothing more.
    for (std::uint64_t s = 0; s < layout.segments(); ++s) held[i][s] = s < job->settled || job->where[i][s] >= 0;
  }
  auto plan = erasure::plan_segments(layout, held, job->usable);
  if (!plan) {
    std::string why;
    for (const auto& [share, reason] : job->reply.dropped) why += (why.empty() ? "" : "; ") + share + ": " + reason;
    return get_failed(job, "the shares at hand cannot rebuild " + job->request.key.str() + ": " + plan.error() +
                               (why.empty() ? "" : " (" + why + ")"),
                      done);
  }
  const int round = ++job->round;
  for (unsigned i = 0; i < n; ++i) {
    if ((*plan)[i].empty()) continue;
    ++job->running;
    auto want = (*plan)[i];
    GetRequest get{job->map.shares[i], job->file(i, round), false, job->request.repo, std::nullopt, {}, want};
    if (i < job->map.holders.size() && job->map.holders[i]) get.hints.push_back(*job->map.holders[i]);
    get.on_chunk = [this, alive = alive_, job, i, round, done](std::size_t segment) {
      if (*alive) segment_in(job, i, segment, round, done);
    };
    object_service_.get(
        get,
        [job, i, round, progress](const Progress& p) {
          if (job->ended) return;
          job->bytes[{i, round}] = p.bytes;
          std::uint64_t sum = 0;
          for (const auto& [at, b] : job->bytes) sum += b;
          const auto& l = job->map.layout;
          auto needed = std::max<std::uint64_t>(1, l.segments() * l.unit * l.shape.k);
          if (progress)
            progress({std::min<std::uint64_t>(l.object_size, sum * l.object_size / needed), l.object_size, std::nullopt});
        },
        [this, alive = alive_, job, i, round, want, progress, done](Outcome<GetReply> outcome) {
          if (!*alive || job->ended) return;
          --job->running;
          const std::string* failed = nullptr;
          if (auto* e = std::get_if<ControlError>(&outcome)) failed = &e->message;
          else if (const auto& r = std::get<GetReply>(outcome); r.error) failed = &*r.error;
          if (failed) {
            job->reply.dropped["share " + std::to_string(i)] = *failed;
            job->usable[i] = false;
            // What came of it and is not written yet is not counted on: a failed fetch
            // may not leave its partial file.
            for (std::uint64_t s = job->settled; s < job->where[i].size(); ++s)
              if (job->where[i][s] == round) {
                job->where[i][s] = -1;
                --job->arrived[s];
              }
          } else {
            const auto& r = std::get<GetReply>(outcome);
            for (const auto& [node, b] : r.bytes_from) job->reply.bytes_from[node] += b;
            job->reply.bytes_fetched += r.bytes_fetched;
            // A local copy tells of no chunks: it holds them all now.
            for (std::size_t s = 0; s < want.size(); ++s)
              if (want[s]) segment_in(job, i, s, round, done);
          }
          if (job->running > 0) return;
          bool covered = std::all_of(job->arrived.begin() + static_cast<std::ptrdiff_t>(job->settled), job->arrived.end(),
                                     [&](unsigned a) { return a >= job->map.layout.shape.k; });
          if (covered) return write_segments(job, done);
          get_round(job, progress, done);
        },
        [job](std::function<void()> gone) { job->cancels.push_back(std::move(gone)); });
  }
  if (job->running == 0) write_segments(job, done);
}

void ShareService::segment_in(std::shared_ptr<Rebuild> job, unsigned share, std::size_t segment, int round,
                              Done<GetReply> done) {
  if (job->ended || share >= job->where.size() || segment >= job->arrived.size()) return;
  if (job->where[share][segment] >= 0) return;
  job->where[share][segment] = round;
  ++job->arrived[segment];
  write_segments(job, done);
}

void ShareService::write_segments(std::shared_ptr<Rebuild> job, Done<GetReply> done) {
  if (job->ended || job->writing) return;
  const auto& layout = job->map.layout;
  const unsigned k = layout.shape.k;
  if (job->next == layout.segments()) {
    if (job->running == 0) get_finished(job, done);
    return;
  }
  // The segments ready from the next one on, each from K units (data shares first).
  std::vector<std::vector<std::pair<unsigned, fs::path>>> batch;
  for (auto s = job->next; s < layout.segments() && job->arrived[s] >= k && batch.size() < 64; ++s) {
    std::vector<std::pair<unsigned, fs::path>> units;
    for (unsigned i = 0; i < job->where.size() && units.size() < k; ++i)
      if (job->where[i][s] >= 0) units.emplace_back(i, job->file(i, job->where[i][s]));
    batch.push_back(std::move(units));
  }
  if (batch.empty()) return;
  job->writing = true;
  job->settled = job->next + batch.size();
  asio::post(disk_, [this, alive = alive_, job, batch = std::move(batch), done] {
    std::optional<std::string> error;
    std::size_t written = 0;
    for (const auto& units : batch) {
      if (auto w = job->writer->write_next(units); !w) {
        error = w.error();
        break;
      }
      ++written;
    }
    asio::post(io_, [this, alive, job, written, error, done] {
      if (!*alive || job->ended) return;
      job->writing = false;
      job->next += written;
      job->settled = job->next;
      if (error) return get_failed(job, "cannot rebuild the object: " + *error, done);
      write_segments(job, done);
    });
  });
}

void ShareService::get_finished(std::shared_ptr<Rebuild> job, Done<GetReply> done) {
  job->ended = true;
  auto fetched_in = std::chrono::duration<double>(std::chrono::steady_clock::now() - job->started).count();
  log::info("{}: every segment in after {:.1f}s ({} bytes from {} holders); checking the object", job->request.key.str(),
            fetched_in, job->reply.bytes_fetched, job->reply.bytes_from.size());
  asio::post(disk_, [this, alive = alive_, job, done] {
    const auto& key = job->request.key;
    std::optional<std::string> error;
    if (auto f = job->writer->finish(); !f) error = f.error();
    job->writer.reset();
    if (!error && job->hash && job->hash->finish_hex() != key.digest_hex())
      error = "the object rebuilt from its shares does not match the key's hash";
    std::error_code ec;
    if (!error && !job->direct && ::rename(job->part.c_str(), job->request.to.c_str()) != 0)
      error = "cannot move the object into " + job->request.to.string() + ": " + std::strerror(errno);
    if (error) fs::remove(job->part, ec);
    fs::remove_all(job->dir, ec);
    asio::post(io_, [alive, job, error, done] {
      if (!*alive) return;
      job->reply.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - job->started).count();
      if (error) return done(ControlError{ControlErrorCode::Failed, *error});
      log::info("{}: rebuilt from its shares and checked, {:.1f}s in all", job->request.key.str(), job->reply.seconds);
      done(job->reply);
    });
  });
}

void ShareService::present_each(const ShareMap& map, const std::string& store, const std::vector<std::string>& pinned,
                                bool spend_audits,
                                std::function<void(std::vector<std::optional<Outcome<PresentReply>>>)> done) {
  gather<Outcome<PresentReply>>(
      timers_, map.shares.size(), fan_out_deadline(),
      [this, &map, &store, &pinned, spend_audits](std::size_t i, Answer<Outcome<PresentReply>> answer) {
        PresentRequest one{map.shares[i], store, {}, pinned, std::nullopt, {}, spend_audits};
        if (i < map.holders.size() && map.holders[i]) one.hints.push_back(*map.holders[i]);
        object_service_.present(one, std::move(answer));
      },
      std::move(done));
}

void ShareService::present(const PresentRequest& request, Done<PresentReply> done) {
  find_map(request.key, request.repo, [this, alive = alive_, request, done](Result<std::optional<ShareMap>> map) {
    if (!*alive) return;
    PresentReply reply;
    if (!map) {
      reply.unknown = true;
      reply.unreachable["share map"] = map.error();
      return done(std::move(reply));
    }
    if (!*map) return done(std::move(reply));  // nobody keeps a share: not present
    auto k = (*map)->layout.shape.k;
    present_each(**map, request.repo, request.pinned, true, [k, done](std::vector<std::optional<Outcome<PresentReply>>> answers) {
      PresentReply reply;
      std::size_t live = 0, unknown = 0;
      // A node counts for one share at most: placement never puts two on one node, and a
      // node that shows several (a liar serving what it fetches from others) adds nothing.
      std::set<std::string> counted;
      for (std::size_t i = 0; i < answers.size(); ++i) {
        auto tag = "share " + std::to_string(i);
        if (!answers[i]) {
          ++unknown;
          reply.unreachable[tag] = "no answer in time";
        } else if (auto* e = std::get_if<ControlError>(&*answers[i])) {
          ++unknown;
          reply.unreachable[tag] = e->message;
        } else {
          const auto& r = std::get<PresentReply>(*answers[i]);
          auto fresh = std::find_if(r.confirmed_by.begin(), r.confirmed_by.end(),
                                    [&](const std::string& n) { return !counted.count(n); });
          if (r.present && fresh != r.confirmed_by.end()) {
            ++live;
            counted.insert(*fresh);
            reply.confirmed_by.push_back(*fresh);
          } else if (r.present) {
            reply.unproven[tag] = "shown only by a node already counted for another share";
          } else if (r.unknown) {
            ++unknown;
            std::string why;
            for (const auto& [node, what] : r.unreachable) why += node.substr(0, 8) + " did not answer: " + what + "; ";
            for (const auto& [node, what] : r.unproven) why += node.substr(0, 8) + ": " + what + "; ";
            reply.unproven[tag] = why;
          }
        }
      }
      // Only K live shares rebuild the object; unanswered holders may be the difference.
      reply.present = live >= k;
      reply.unknown = !reply.present && live + unknown >= k;
      if (!reply.present && !reply.unknown) reply.unreachable.clear(), reply.unproven.clear();
      done(std::move(reply));
    });
  });
}

void ShareService::share_counts(const AnnexKey& key, std::function<void(std::vector<WhereisReply::Shares>)> done) {
  directory_.providers(ShareMap::map_key(key), [this, alive = alive_, key, done](std::vector<Provider> found) {
    if (!*alive) return;
    // The stores whose map this node keeps itself first: the uploading node knows them at
    // once, before the announcements of the map reach the DHT.
    std::vector<std::string> stores;
    auto map_key = ShareMap::map_key(key);
    for (const auto& repo : objects_.all())
      if (repo.store && objects_.locate(map_key, repo.uuid)) stores.push_back(repo.uuid);
    for (const auto& p : found)
      if (std::find(stores.begin(), stores.end(), p.repo_uuid) == stores.end()) stores.push_back(p.repo_uuid);
    if (stores.size() > 8) stores.resize(8);  // a key is in a few stores; a flood of records is not followed
    gather<WhereisReply::Shares>(
        timers_, stores.size(), 2 * fan_out_deadline(),
        [this, alive, key, stores](std::size_t i, Answer<WhereisReply::Shares> answer) {
          find_map(key, stores[i], [this, alive, key, store = stores[i], answer](Result<std::optional<ShareMap>> map) {
            if (!*alive) return;
            WhereisReply::Shares out{store, "", 0, 0, 0};
            if (!map || !*map) return answer(out);
            auto kept = std::make_shared<ShareMap>(std::move(**map));
            out.shape = kept->layout.shape.text();
            out.n = kept->layout.shape.n();
            present_each(*kept, store, {}, true, [kept, out, answer](std::vector<std::optional<Outcome<PresentReply>>> answers) mutable {
              for (const auto& a : answers) {
                auto* r = a ? std::get_if<PresentReply>(&*a) : nullptr;
                if (r && r->present) ++out.live;
                else if (r && !r->unproven.empty()) ++out.claimed;
              }
              answer(out);
            });
          });
        },
        [done](std::vector<std::optional<WhereisReply::Shares>> answers) {
          std::vector<WhereisReply::Shares> out;
          for (auto& a : answers)
            if (a && a->n) out.push_back(std::move(*a));
          done(std::move(out));
        });
  });
}

void ShareService::remove(const RemoveRequest& request, Done<RemoveReply> done) {
  find_map(request.key, request.store, [this, alive = alive_, request, done](Result<std::optional<ShareMap>> map) {
    if (!*alive) return;
    if (!map) {
      RemoveReply reply;
      reply.failed["share map"] = map.error();
      return done(std::move(reply));
    }
    if (!*map) return done(RemoveReply{});  // nothing kept anywhere
    auto keys = (*map)->shares;
    auto holders = (*map)->holders;
    keys.push_back(ShareMap::map_key(request.key));  // the map last: found again if a share fails
    gather<Outcome<RemoveReply>>(
        timers_, keys.size(), fan_out_deadline(),
        [this, &keys, &holders, &request](std::size_t i, Answer<Outcome<RemoveReply>> answer) {
          RemoveRequest one{keys[i], request.store, std::nullopt, {}};
          if (i < holders.size() && holders[i]) one.hints.push_back(*holders[i]);
          if (i == keys.size() - 1)  // the map: every holder kept one
            for (const auto& h : holders)
              if (h) one.hints.push_back(*h);
          object_service_.remove(one, std::move(answer));
        },
        [keys, done](std::vector<std::optional<Outcome<RemoveReply>>> answers) {
          RemoveReply reply;
          for (std::size_t i = 0; i < answers.size(); ++i) {
            if (!answers[i]) {
              reply.failed[keys[i].str()] = "no answer in time";
            } else if (auto* e = std::get_if<ControlError>(&*answers[i])) {
              reply.failed[keys[i].str()] = e->message;
            } else {
              const auto& r = std::get<RemoveReply>(*answers[i]);
              for (const auto& n : r.removed_from) reply.removed_from.push_back(n);
              for (const auto& [node, why] : r.failed) reply.failed[node] = why;
            }
          }
          done(std::move(reply));
        });
  });
}

}  // namespace annexswarm

namespace annexswarm {

// ---- repair ----

struct ShareService::Repair {
  RepairRequest request;
  ShareMap map;
  std::vector<bool> live;                    // share i shown (or claimed) by a holder
  std::vector<std::vector<NodeId>> holders;  // who showed or claimed share i
  std::vector<unsigned> missing;
  std::set<NodeId> unreachable;              // holders that did not answer: not asked to take a share
  fs::path dir;                              // fetched and rebuilt shares
  std::vector<bool> fetched;
  std::size_t waiting = 0;
  RepairReply reply;
};

void ShareService::repair(const RepairRequest& request, ProgressFn progress, Done<RepairReply> done) {
  if (!objects_.index_of(request.store)) objects_.store(request.store);
  find_map(request.key, request.store, [this, alive = alive_, request, progress, done](Result<std::optional<ShareMap>> map) {
    if (!*alive) return;
    if (!map) return done(ControlError{ControlErrorCode::Failed, map.error()});
    if (!*map)
      return done(ControlError{ControlErrorCode::NotFound, "no member keeps shares of " + request.key.str() +
                                                               " in swarm store " + request.store});
    auto job = std::make_shared<Repair>();
    job->request = request;
    job->map = std::move(**map);
    const auto n = job->map.layout.shape.n();
    job->live.assign(n, false);
    job->holders.assign(n, {});
    job->map.holders.resize(n);
    job->reply.key = request.key.str();
    job->reply.shape = job->map.layout.shape.text();
    job->reply.shares = n;
    // Which shares are live, asked as CHECKPRESENT asks. A holder that says it has a share
    // that this node cannot check (no audits here) is taken at its word for now: the share
    // is fetched, and so checked, if it is needed to rebuild.
    // The daemon's own sweep asks without proofs (see PresentRequest::spend_audits); only
    // the holder that will repair asks again with them.
    present_each(job->map, request.store, {}, !request.only_if_first,
                 [this, alive, job, done, progress](std::vector<std::optional<Outcome<PresentReply>>> answers) {
      if (!*alive) return;
      for (std::size_t i = 0; i < answers.size(); ++i) {
        auto* r = answers[i] ? std::get_if<PresentReply>(&*answers[i]) : nullptr;
        if (!r) continue;
        auto add = [&](const std::string& hex) {
          if (auto node = NodeId::from_hex(hex)) job->holders[i].push_back(*node);
        };
        for (const auto& node : r->confirmed_by) add(node);
        for (const auto& [node, why] : r->unproven) add(node);
        for (const auto& [node, why] : r->unreachable)
          if (auto id = NodeId::from_hex(node)) job->unreachable.insert(*id);
        job->live[i] = r->present || !r->unproven.empty();
      }
      for (unsigned s = 0; s < job->live.size(); ++s)
        if (!job->live[s]) job->missing.push_back(s);
      const auto k = job->map.layout.shape.k, n = job->map.layout.shape.n();
      job->reply.live_before = n - job->missing.size();
      job->reply.live_after = job->reply.live_before;
      const auto key = job->request.key.str();
      if (job->missing.empty()) {
        short_before_.erase(key);
        return done(job->reply);
      }
      if (job->reply.live_before < k)
        return done(ControlError{ControlErrorCode::Failed,
                                 "only " + std::to_string(job->reply.live_before) + " of the " + std::to_string(k) +
                                     " shares needed to rebuild " + job->request.key.str() + " are live"});
      if (job->request.only_if_first) {
        // The same shares missing at two sweeps in a row, and this node first among the
        // live holders: then it repairs, checking the holders again with proofs.
        auto& before = short_before_[key];
        bool again = before == job->missing;
        before = job->missing;
        if (!again) return done(job->reply);
        job->reply.left_to = first_holder(*job).hex();
        if (first_holder(*job) != directory_.self()) return done(job->reply);
        short_before_.erase(key);
        auto checked = job->request;
        checked.only_if_first = false;
        return repair(checked, progress, done);
      }
      repair_rebuild(job, done);
    });
  });
}

struct ShareService::RepairAll {
  std::vector<KeptMap> queue;  // taken from the back
  RepairAllReply reply;
  Done<RepairAllReply> done;  // the control socket's heartbeat keeps the caller waiting meanwhile
};

void ShareService::repair_all(const RepairAllRequest& request, ProgressFn, Done<RepairAllReply> done) {
  auto index = objects_.index_of(request.store);
  if (!index || !objects_.at(*index).store)
    return done(ControlError{ControlErrorCode::NotAStore,
                             "this node keeps no share maps for swarm store " + request.store +
                                 " (run it where the keys were stored, or on a node holding shares)"});
  auto job = std::make_shared<RepairAll>();
  job->reply.store = request.store;
  job->done = std::move(done);
  asio::post(disk_, [this, alive = alive_, job, store = objects_.at(*index)] {
    auto maps = kept_maps({store}, std::chrono::milliseconds(0));
    asio::post(io_, [this, alive, job, maps = std::move(maps)]() mutable {
      if (!*alive) return;
      job->reply.keys = maps.size();
      job->queue.assign(std::make_move_iterator(maps.rbegin()), std::make_move_iterator(maps.rend()));
      repair_next(job);
    });
  });
}

void ShareService::repair_next(std::shared_ptr<RepairAll> job) {
  if (job->queue.empty()) return job->done(job->reply);
  auto kept = std::move(job->queue.back());
  job->queue.pop_back();
  repair(RepairRequest{kept.map.key, kept.store}, {}, [this, alive = alive_, job, key = kept.map.key.str(),
                                                       store = kept.store](Outcome<RepairReply> outcome) {
    if (!*alive) return;
    note_shares(key, store, outcome);
    if (auto* e = std::get_if<ControlError>(&outcome)) {
      job->reply.failed[key] = e->message;
    } else {
      const auto& r = std::get<RepairReply>(outcome);
      std::string why;
      for (const auto& [share, reason] : r.failed) why += (why.empty() ? "" : "; ") + share + ": " + reason;
      if (!why.empty()) job->reply.failed[key] = why;
      else if (!r.placed.empty()) ++job->reply.repaired;
      else ++job->reply.whole;
    }
    timers_.post([this, alive, job] {
      if (*alive) repair_next(job);
    });
  });
}

void ShareService::note_shares(const std::string& key, const std::string& store, const Outcome<RepairReply>& outcome) {
  auto& entry = sweep_status_.keys[key];
  entry.store = store;
  entry.checked_at = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
  entry.problem.clear();
  if (auto* e = std::get_if<ControlError>(&outcome)) {
    entry.problem = e->message;
    entry.live = 0;
    return;
  }
  const auto& r = std::get<RepairReply>(outcome);
  entry.live = r.live_after;
  entry.n = r.shares;
  for (const auto& [share, why] : r.failed) entry.problem += (entry.problem.empty() ? "" : "; ") + share + ": " + why;
}

NodeId ShareService::first_holder(const Repair& job) const {
  // The live holders in an order of the key's own (rendezvous): every holder finds the same first.
  std::optional<std::pair<crypto::Sha256Digest, NodeId>> first;
  for (std::size_t i = 0; i < job.holders.size(); ++i) {
    if (!job.live[i]) continue;
    for (const auto& node : job.holders[i]) {
      auto rank = crypto::sha256(as_bytes(job.map.key.str() + node.hex()));
      if (!first || rank < first->first) first = std::make_pair(rank, node);
    }
  }
  return first ? first->second : NodeId{};
}

// ---- the daemon's own repairs ----

void ShareService::start_sweeps(std::chrono::milliseconds interval) {
  // A new timer: whatever the old one had scheduled never fires.
  sweep_interval_ = interval;
  sweep_status_.interval_seconds = std::chrono::duration_cast<std::chrono::seconds>(interval).count();
  sweep_timer_ = timers_.make_timer();
  if (interval.count() > 0) sweep_timer_->schedule(interval, [this] { sweep(); });
}

void ShareService::stop() {
  stopping_ = true;
  if (sweep_timer_) sweep_timer_->cancel();
}

std::vector<ShareService::KeptMap> ShareService::kept_maps(const std::vector<AnnexRepo>& stores,
                                                          std::chrono::milliseconds settle) {
  std::vector<KeptMap> out;
  for (const auto& repo : stores) {
    for (const auto& name : scan_present_keys(repo).keys) {
      if (!name.starts_with("SWARMMAP-")) continue;
      auto key = AnnexKey::parse(name);
      if (!key) continue;
      auto path = store_object_path(repo, *key);
      std::error_code ec;
      auto kept_at = fs::last_write_time(path, ec);
      if (ec || fs::file_time_type::clock::now() - kept_at < settle) continue;
      auto text = read_map_text(path);
      if (!text) continue;
      auto map = ShareMap::parse_any(*text);
      if (!map || ShareMap::map_key(map->key).str() != name) continue;
      out.push_back({repo.uuid, std::move(*map)});
    }
  }
  return out;
}

void ShareService::sweep() {
  if (stopping_ || sweeping_) return;  // one under way schedules the next when it ends
  sweeping_ = true;
  std::vector<AnnexRepo> stores;
  for (const auto& repo : objects_.all())
    if (repo.store) stores.push_back(repo);
  // The maps kept here, read on the disk worker (a store may hold many keys). A map kept
  // only just now may belong to a store still placing its shares: it waits a while.
  auto settle = std::min<std::chrono::milliseconds>(sweep_interval_, std::chrono::minutes(10));
  asio::post(disk_, [this, alive = alive_, stores, settle] {
    auto queue = std::make_shared<std::vector<KeptMap>>(kept_maps(stores, settle));
    std::reverse(queue->begin(), queue->end());  // taken from the back: in key order
    asio::post(io_, [this, alive, queue] {
      if (!*alive) return;
      ++sweep_status_.sweeps;
      std::set<std::string> kept;
      for (const auto& k : *queue) kept.insert(k.map.key.str());
      std::erase_if(sweep_status_.keys, [&](const auto& entry) { return !kept.count(entry.first); });
      sweep_next(queue);
    });
  });
}

void ShareService::sweep_next(std::shared_ptr<std::vector<KeptMap>> queue) {
  if (stopping_) return;
  if (queue->empty()) {
    sweeping_ = false;
    if (sweep_interval_.count() > 0) sweep_timer_->schedule(sweep_interval_, [this] { sweep(); });
    return;
  }
  auto kept = std::move(queue->back());
  queue->pop_back();
  ++sweep_status_.keys_checked;
  RepairRequest request{kept.map.key, kept.store, true};
  repair(request, {}, [this, alive = alive_, queue, key = kept.map.key, store = kept.store](Outcome<RepairReply> outcome) {
    if (!*alive) return;
    note_shares(key.str(), store, outcome);
    if (auto* e = std::get_if<ControlError>(&outcome)) {
      ++sweep_status_.failed;
      log::warn("repair of {}: {}", key.str(), e->message);
    } else if (const auto& r = std::get<RepairReply>(outcome); !r.placed.empty()) {
      ++sweep_status_.repaired;
    }
    // One key at a time, on the io thread's next turn (not from inside the last answer).
    timers_.post([this, alive, queue] {
      if (*alive) sweep_next(queue);
    });
  });
}

void ShareService::repair_rebuild(std::shared_ptr<Repair> job, Done<RepairReply> done) {
  const auto k = job->map.layout.shape.k;
  job->dir = scratch(job->request.store) / ("repair-" + random_name());
  std::error_code ec;
  fs::create_directories(job->dir, ec);
  job->fetched.assign(job->map.shares.size(), false);
  std::vector<unsigned> from;
  for (unsigned i = 0; i < job->live.size() && from.size() < k; ++i)
    if (job->live[i]) from.push_back(i);
  job->waiting = from.size();
  for (auto i : from) {
    GetRequest get{job->map.shares[i], job->dir / std::to_string(i), false, job->request.store, std::nullopt,
                   job->holders[i]};
    object_service_.get(get, [](const Progress&) {}, [this, alive = alive_, job, i, done](Outcome<GetReply> outcome) {
      if (!*alive) return;
      auto* r = std::get_if<GetReply>(&outcome);
      job->fetched[i] = r && !r->error;
      if (!job->fetched[i])
        job->reply.failed["share " + std::to_string(i)] =
            "could not fetch it to rebuild the others: " + (r ? *r->error : std::get<ControlError>(outcome).message);
      if (--job->waiting > 0) return;
      std::size_t got = std::count(job->fetched.begin(), job->fetched.end(), true);
      if (got < job->map.layout.shape.k) {
        std::error_code ec;
        fs::remove_all(job->dir, ec);
        std::string why;
        for (const auto& [s, w] : job->reply.failed) why += s + ": " + w + "; ";
        return done(ControlError{ControlErrorCode::Failed, "cannot rebuild: " + why});
      }
      job->reply.failed.clear();
      auto repo = objects_.at(*objects_.index_of(job->request.store));
      asio::post(disk_, [this, alive, job, repo, done] {
        erasure::ShareFiles files(job->map.shares.size());
        erasure::ShareDigests trusted;  // fetched shares were checked against their roots
        trusted.units.assign(files.size(), Bytes());
        for (std::size_t i = 0; i < files.size(); ++i)
          if (job->fetched[i]) files[i] = job->dir / std::to_string(i);
        std::vector<fs::path> out;
        for (auto m : job->missing) out.push_back(job->dir / ("new-" + std::to_string(m)));
        std::optional<std::string> error;
        auto rebuilt = erasure::rebuild_shares(job->map.layout, files, trusted, job->missing, out);
        if (!rebuilt) error = rebuilt.error();
        for (std::size_t j = 0; !error && j < out.size(); ++j) {
          // The rebuilt share must be the very bytes its key names.
          auto manifest = hash_manifest(out[j]);
          if (!manifest || to_hex(manifest->root) != job->map.shares[job->missing[j]].share_root_hex()) {
            error = "rebuilt share " + std::to_string(job->missing[j]) + " does not match its key";
            break;
          }
          auto moved = move_into_store(repo, job->map.shares[job->missing[j]], out[j]);
          if (!moved) error = moved.error();
          auto path = store_object_path(repo, job->map.shares[job->missing[j]]);
          if (auto a = object_service_.audits().record(repo.uuid, job->map.shares[job->missing[j]], path); !a)
            log::warn("could not keep audits of a rebuilt share: {}", a.error());
        }
        std::error_code ec;
        fs::remove_all(job->dir, ec);
        asio::post(io_, [this, alive, job, error, done] {
          if (!*alive) return;
          if (error) return done(ControlError{ControlErrorCode::Failed, *error});
          repair_place(job, done);
        });
      });
    });
  }
}

void ShareService::repair_place(std::shared_ptr<Repair> job, Done<RepairReply> done) {
  directory_.members(directory_.lookup_timeout(), [this, alive = alive_, job, done](std::vector<Member> members) {
    if (!*alive) return;
    const auto self = directory_.self();
    std::set<NodeId> taken = job->unreachable;  // never two shares of one object on one node
    for (const auto& h : job->holders)
      for (const auto& n : h) taken.insert(n);
    auto round = std::make_shared<TakeRound>();
    round->store = job->request.store;
    round->index = *objects_.index_of(job->request.store);
    round->map = job->map;
    for (std::size_t i = 0; i < round->map.shares.size(); ++i)
      round->map.holders[i] = job->live[i] && !job->holders[i].empty() ? std::optional<NodeId>(job->holders[i][0]) : std::nullopt;
    std::vector<erasure::StoreOffer> offers;
    if (!taken.count(self)) offers.push_back({self, settings_.store_offer ? settings_.store_offer() : 0});
    for (const auto& m : members) {
      const auto& node = m.contact.node;
      if (directory_.swarms()[m.swarm].is_public() || node == self || taken.count(node) || round->members.count(node))
        continue;
      round->members[node] = m;
      offers.push_back({node, m.contact.store_offer});
    }
    round->ranked = erasure::place_shares(round->map.key.str(), offers, offers.size(), round->map.layout.share_size());
    round->done = [job, round, done] {
      for (auto m : job->missing) {
        auto tag = "share " + std::to_string(m);
        if (round->placed.count(m)) job->reply.placed[tag] = round->placed[m].hex();
        if (round->failed.count(m)) job->reply.failed[tag] = round->failed[m];
      }
      job->reply.live_after = job->reply.live_before + job->reply.placed.size();
      log::info("repaired {}: {} of {} shares live (was {})", job->map.key.str(), job->reply.live_after,
                job->map.shares.size(), job->reply.live_before);
      done(job->reply);
    };
    take_round(round, job->missing);
  });
}

}  // namespace annexswarm
