#include "node/announcer.hpp"

#include "node/dht_client.hpp"
#include "node/log.hpp"
#include "node/state_files.hpp"

namespace annexswarm {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {
constexpr auto kFullRescanEvery = 1h;
constexpr auto kSaveEvery = 60s;
constexpr auto kBusyTick = 20ms;
constexpr auto kIdleTick = 500ms;
// A changed bucket goes out this long after the change (AnnounceTable::set_settle).
constexpr auto kChangeSettle = 1s;
constexpr auto kOfflineRecordRetry = 10s;
}  // namespace

Announcer::Announcer(Timers& timers, SwarmDirectory& directory, LocalObjects& objects, Settings settings,
                     Mediator mediator)
    : timers_(timers),
      directory_(directory),
      objects_(objects),
      settings_(std::move(settings)),
      mediator_(std::move(mediator)),
      poll_timer_(timers.make_timer()),
      tick_timer_(timers.make_timer()),
      save_timer_(timers.make_timer()),
      records_timer_(timers.make_timer()) {
  const auto& swarms = directory_.swarms();
  tables_.resize(swarms.size());
  tables_dirty_.assign(swarms.size(), false);
  for (std::size_t i = 0; i < objects_.all().size(); ++i) repo_added(i);
}

Announcer::~Announcer() { *alive_ = false; }

void Announcer::start() {
  put_repo_records();
  poll();
  tick();
  save_timer_->schedule(kSaveEvery, [this] { save_tables(); });
}

void Announcer::stop() {
  stopping_ = true;
  poll_timer_->cancel();
  tick_timer_->cancel();
  save_timer_->cancel();
  records_timer_->cancel();
  save_tables();
}

fs::path Announcer::table_path(std::size_t swarm, const AnnexRepo& repo) const {
  return settings_.state_dir / ("announce-" + directory_.swarms()[swarm].id() + "-" + repo.uuid + ".state");
}

AnnounceTable Announcer::load_table(std::size_t swarm, const AnnexRepo& repo) const {
  auto ttl = std::chrono::duration_cast<std::chrono::seconds>(kRecordLifetime + 5min);
  auto path = table_path(swarm, repo);
  auto settled = [](AnnounceTable table) {
    table.set_settle(kChangeSettle);
    return table;
  };
  std::error_code ec;
  if (fs::exists(path, ec)) {
    if (auto text = read_file(path)) {
      auto loaded = AnnounceTable::load(*text, settings_.refresh, ttl, timers_.wall_now());
      if (loaded) return settled(std::move(*loaded));
      log::warn("{}: {}; announcing from scratch", path.string(), loaded.error());
    }
  }
  return settled(AnnounceTable(settings_.refresh, ttl));
}

void Announcer::repo_added(std::size_t index) {
  // LocalObjects only appends, so index is the next slot.
  scans_.resize(index + 1);
  for (std::size_t si = 0; si < tables_.size(); ++si) tables_[si].push_back(load_table(si, objects_.at(index)));
}

void Announcer::save_tables() {
  for (std::size_t si = 0; si < tables_.size(); ++si) {
    if (!tables_dirty_[si]) continue;
    tables_dirty_[si] = false;
    for (std::size_t i = 0; i < objects_.all().size(); ++i) {
      auto r = write_file_atomic(table_path(si, objects_.at(i)), tables_[si][i].save(), 0600);
      if (!r) log::warn("cannot save announce state: {}", r.error());
    }
  }
  if (!stopping_) save_timer_->schedule(kSaveEvery, [this] { save_tables(); });
}

void Announcer::put_repo_records() {
  if (stopping_) return;
  for (const auto& repo : objects_.all())
    if (!repo.store) directory_.put_repo(repo.uuid);  // stores are found through their keys
  // Until the DHT has peers a put reaches nobody: retry soon, then settle to the refresh.
  auto next = mediator_.connected() ? std::chrono::duration_cast<Timers::Clock::duration>(settings_.refresh)
                                    : std::chrono::duration_cast<Timers::Clock::duration>(kOfflineRecordRetry);
  records_timer_->schedule(next, [this] { put_repo_records(); });
}

void Announcer::rescan_soon(std::size_t index) {
  if (index >= scans_.size()) return;
  if (scans_[index].scanning) scans_[index].dirty = true;  // poll() picks it up
  else start_scan(index);
}

void Announcer::key_changed(std::size_t index, const AnnexKey& key, bool present) {
  if (index >= scans_.size()) return;
  auto& scan = scans_[index];
  // A scan under way may have listed the directory before this change: look again after it.
  if (scan.scanning || !scan.scanned) return rescan_soon(index);
  auto now = timers_.wall_now();
  std::size_t changed = 0;
  for (std::size_t si = 0; si < tables_.size(); ++si) {
    auto delta = tables_[si][index].apply_change(directory_.swarms()[si].key_index(key), present, now);
    if (delta.buckets) tables_dirty_[si] = true;
    changed = std::max(changed, delta.added + delta.removed);
  }
  if (changed) scan.keys = present ? scan.keys + 1 : (scan.keys ? scan.keys - 1 : 0);
}

void Announcer::dht_connected() {
  for (auto& per_swarm : tables_)
    for (auto& table : per_swarm) table.retry_failed(timers_.wall_now());
}

void Announcer::poll() {
  if (stopping_) return;
  auto now = timers_.now();
  for (std::size_t i = 0; i < scans_.size(); ++i) {
    auto& scan = scans_[i];
    if (scan.scanning) continue;
    const auto& repo = objects_.at(i);
    // A swarm store changes only through this node, which says so key by key: it is
    // scanned at start, when asked, and hourly, never for a moved time stamp.
    auto stamp = repo.store ? ChangeStamp{} : change_stamp(repo);
    if (!scan.dirty && scan.stamp && *scan.stamp == stamp && now - scan.last_full < kFullRescanEvery) continue;
    scan.dirty = false;
    scan.stamp = stamp;
    start_scan(i);
  }
  poll_timer_->schedule(settings_.poll, [this] { poll(); });
}

void Announcer::start_scan(std::size_t index) {
  scans_[index].scanning = true;
  auto repo = objects_.at(index);
  auto tokens = directory_.swarms();
  mediator_.run_blocking([this, alive = alive_, index, repo, tokens = std::move(tokens)] {
    auto t0 = std::chrono::steady_clock::now();
    auto scan = scan_present_keys(repo);
    // Where each key's provider record lives, per swarm: HMACs, kept off the io thread.
    std::vector<std::vector<KeyIndex>> indexes(tokens.size());
    for (std::size_t si = 0; si < tokens.size(); ++si) {
      indexes[si].reserve(scan.keys.size());
      for (const auto& key : scan.keys) indexes[si].push_back(tokens[si].key_index(AnnexKey::parse(key).value()));
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    timers_.post([this, alive, index, count = scan.keys.size(), invalid = scan.invalid_names,
                  indexes = std::move(indexes), seconds]() mutable {
      if (*alive) on_scan(index, count, invalid, std::move(indexes), seconds);
    });
  });
}

void Announcer::on_scan(std::size_t index, std::size_t key_count, std::size_t invalid_names,
                        std::vector<std::vector<KeyIndex>> indexes, double seconds) {
  auto& scan = scans_[index];
  const auto& repo = objects_.at(index);
  scan.scanning = false;
  scan.scanned = true;
  scan.keys = key_count;
  scan.invalid_names = invalid_names;
  scan.seconds = seconds;
  scan.last_full = timers_.now();
  auto now = timers_.wall_now();
  for (std::size_t si = 0; si < tables_.size(); ++si) {
    auto delta = tables_[si][index].apply_scan(std::move(indexes[si]), now);
    if (delta.buckets) {
      tables_dirty_[si] = true;
      log::info("{}: {} keys ({} new, {} gone; {} bucket records to put) for swarm {}, scanned in {:.2f}s",
                repo.path.string(), key_count, delta.added, delta.removed, delta.buckets,
                directory_.swarms()[si].id(), seconds);
    }
  }
  if (invalid_names)
    log::warn("{}: {} object directories are not valid annex keys; ignored", repo.path.string(), invalid_names);
}

void Announcer::tick() {
  if (stopping_) return;
  auto steady_now = timers_.now();
  double elapsed = std::chrono::duration<double>(steady_now - tokens_at_).count();
  tokens_at_ = steady_now;
  tokens_ = std::min(settings_.rate, tokens_ + elapsed * settings_.rate);
  std::size_t issued = 0;
  auto now = timers_.wall_now();
  std::size_t repos = scans_.size();
  std::size_t tables = tables_.size() * repos;
  // Round-robin over (swarm, repo) tables, each only once its repo has been scanned.
  for (std::size_t visited = 0; visited < tables && tokens_ >= 1 && in_flight_ < settings_.window; ++visited) {
    std::size_t t = (next_table_ + visited) % tables;
    std::size_t si = t / repos, ri = t % repos;
    if (!scans_[ri].scanned) continue;
    auto budget = std::min<std::size_t>(static_cast<std::size_t>(tokens_), settings_.window - in_flight_);
    for (auto& job : tables_[si][ri].take_due(now, budget)) {
      tokens_ -= 1;
      ++in_flight_;
      ++issued;
      auto tags = std::move(job.tags);
      job.tags = {};  // the table only needs bucket and seq back
      directory_.put_bucket(si, objects_.at(ri).uuid, job.bucket, tags,
                            [this, alive = alive_, si, ri, job = std::move(job)](bool ok) {
                              if (!*alive) return;
                              --in_flight_;
                              ok ? ++puts_ok_ : ++puts_failed_;
                              if (stopping_) return;
                              tables_[si][ri].on_result(job, ok, timers_.wall_now());
                              tables_dirty_[si] = true;
                            });
    }
  }
  if (tables) next_table_ = (next_table_ + 1) % tables;
  auto next = (issued || in_flight_) ? Timers::Clock::duration(kBusyTick) : Timers::Clock::duration(kIdleTick);
  tick_timer_->schedule(next, [this] { tick(); });
}

Announcer::Status Announcer::status() const {
  Status out{settings_.rate, settings_.refresh.count(), in_flight_, puts_ok_, puts_failed_, {}};
  for (std::size_t i = 0; i < scans_.size(); ++i) {
    const auto& repo = objects_.at(i);
    const auto& scan = scans_[i];
    RepoStatus r{repo.path, repo.uuid, scan.scanned, scan.keys, scan.invalid_names, scan.seconds, {}};
    for (const auto& per_swarm : tables_) r.per_swarm.emplace_back(per_swarm[i].confirmed_keys(), per_swarm[i].key_count());
    out.repos.push_back(std::move(r));
  }
  return out;
}

}  // namespace annexswarm
