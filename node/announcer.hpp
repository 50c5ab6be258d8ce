#pragma once
// The announcer: tells every swarm which keys this node's repositories and stores hold.
// It scans each one (off the io thread) when its change stamp moves, and at least hourly;
// feeds the result to one AnnounceTable per (swarm, repository); and puts the bucket
// records that come due, within a put budget (puts per second, puts in flight). Tables
// are saved in the state dir, so a restart puts again only what changed. Repository
// records (which node serves which annex repository) are put every refresh period.
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "node/announce_table.hpp"
#include "node/annex_repo.hpp"
#include "node/local_objects.hpp"
#include "node/swarm_directory.hpp"
#include "node/timers.hpp"

namespace annexswarm {

class Announcer {
public:
  struct Settings {
    std::filesystem::path state_dir;
    double rate = 400;            // puts per second
    std::size_t window = 256;     // puts in flight
    std::chrono::seconds refresh{3000};
    std::chrono::seconds poll{5};
  };
  struct Mediator {
    // Runs blocking work (a scan) elsewhere; the work posts its result back itself.
    std::function<void(std::function<void()>)> run_blocking;
    std::function<bool()> connected;  // the DHT has peers
  };
  struct RepoStatus {
    std::filesystem::path path;
    std::string uuid;
    bool scanned = false;
    std::size_t keys = 0;
    std::size_t invalid_names = 0;
    double last_scan_seconds = 0;
    std::vector<std::pair<std::size_t, std::size_t>> per_swarm;  // announced, keys
  };
  struct Status {
    double rate = 0;
    std::int64_t refresh_seconds = 0;
    std::size_t in_flight = 0;
    std::uint64_t puts_ok = 0;
    std::uint64_t puts_failed = 0;
    std::vector<RepoStatus> repos;
  };

  Announcer(Timers& timers, SwarmDirectory& directory, LocalObjects& objects, Settings settings, Mediator mediator);
  ~Announcer();
  void start();
  void stop();  // saves the tables

  void repo_added(std::size_t index);  // a new swarm store
  void rescan_soon(std::size_t index);
  // One key came or went in a store through this node: announced without a scan.
  void key_changed(std::size_t index, const AnnexKey& key, bool present);
  void dht_connected();  // retry failed puts now, not after their backoff
  Status status() const;

private:
  struct Scan {
    std::optional<ChangeStamp> stamp;
    bool scanning = false;
    bool scanned = false;
    bool dirty = false;  // changed through us: scan at the next poll
    std::size_t keys = 0;
    std::size_t invalid_names = 0;
    double seconds = 0;
    std::chrono::steady_clock::time_point last_full{};
  };
  AnnounceTable load_table(std::size_t swarm, const AnnexRepo& repo) const;
  std::filesystem::path table_path(std::size_t swarm, const AnnexRepo& repo) const;
  void save_tables();
  void poll();
  void start_scan(std::size_t index);
  void on_scan(std::size_t index, std::size_t keys, std::size_t invalid, std::vector<std::vector<KeyIndex>> indexes,
               double seconds);
  void tick();
  void put_repo_records();

  Timers& timers_;
  SwarmDirectory& directory_;
  LocalObjects& objects_;
  Settings settings_;
  Mediator mediator_;
  std::vector<Scan> scans_;                      // per repository
  std::vector<std::vector<AnnounceTable>> tables_;  // [swarm][repository]
  std::vector<bool> tables_dirty_;               // per swarm
  double tokens_ = 0;
  Timers::Clock::time_point tokens_at_{};
  std::size_t in_flight_ = 0;
  std::uint64_t puts_ok_ = 0, puts_failed_ = 0;
  std::size_t next_table_ = 0;
  bool stopping_ = false;
  std::unique_ptr<Timer> poll_timer_, tick_timer_, save_timer_, records_timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for scans finishing after us
};

}  // namespace annexswarm
