// DHT figures on a local network: N plain OpenDHT nodes (in this process, each on its
// own port on 127.0.0.1) plus two real annex-swarm daemons. One daemon serves a
// repository with K keys; we time the announce, check how many keys are retrievable,
// and compare `whereis` latency with a plain OpenDHT get of the same location.
//   dht_announce_bench [--nodes 50] [--keys 10000] [--rate 400] [--window 256] [--sample 1000]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <random>
#include <sstream>
#include <thread>

#include <opendht/dhtrunner.h>

#include "discovery/control_client.hpp"
#include "node/annex_repo.hpp"
#include "node/dht_node.hpp"
#include "node/subprocess.hpp"
#include "protocol/annex_key.hpp"
#include "protocol/bytes.hpp"
#include "protocol/crypto.hpp"
#include "protocol/swarm_token.hpp"

namespace fs = std::filesystem;
using namespace annexswarm;
using Clock = std::chrono::steady_clock;

namespace {

int arg_int(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == name) return std::atoi(argv[i + 1]);
  return fallback;
}

pid_t spawn_daemon(const std::vector<std::string>& args, const fs::path& log) {
  std::vector<std::string> argv{ANNEX_SWARM_BIN, "daemon"};
  argv.insert(argv.end(), args.begin(), args.end());
  return spawn_process(argv, log.string());
}

nlohmann::json ask(const fs::path& state, const nlohmann::json& req) {
  auto client = ControlClient::connect(state);
  if (!client) return {};
  auto reply = client->request(req);
  return reply ? *reply : nlohmann::json();
}

long proc_kb(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + std::strlen(field));
  return -1;
}

// User+system CPU seconds of a process so far.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = content.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(content.substr(close + 2));
  std::string skip;
  for (int i = 0; i < 11; ++i) fields >> skip;  // state .. cmajflt
  double utime = 0, stime = 0;
  fields >> utime >> stime;
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// Makes an annex repository whose objects directory holds `count` present keys.
std::vector<std::string> fabricate_repo(const fs::path& path, int count) {
  fs::create_directories(path);
  run_process({"git", "-C", path.string(), "init", "-q"});
  run_process({"git", "-C", path.string(), "annex", "init", "-q", "bench"});
  std::vector<std::string> keys;
  std::mt19937_64 rng(42);
  for (int i = 0; i < count; ++i) {
    std::array<std::uint8_t, 32> digest;
    for (auto& b : digest) b = static_cast<std::uint8_t>(rng());
    std::string key = "SHA256E-s" + std::to_string(1000 + i) + "--" + to_hex(digest) + ".bin";
    auto parsed = AnnexKey::parse(key).value();
    auto dir = path / ".git/annex/objects" / parsed.hash_dir_mixed() / key;
    fs::create_directories(dir);
    std::ofstream(dir / key).put('x');
    keys.push_back(key);
  }
  return keys;
}

}  // namespace

int main(int argc, char** argv) {
  int node_count = arg_int(argc, argv, "--nodes", 50);
  int key_count = arg_int(argc, argv, "--keys", 10000);
  int rate = arg_int(argc, argv, "--rate", 400);
  int window = arg_int(argc, argv, "--window", 256);
  int sample = std::min(arg_int(argc, argv, "--sample", 1000), key_count);
  char tmpl[] = "/tmp/annex-swarm-bench-XXXXXX";
  fs::path dir = mkdtemp(tmpl);
  std::printf("bench dir %s: %d DHT nodes (%d plain OpenDHT + 2 annex-swarm), %d keys, rate %d/s, window %d\n",
              dir.c_str(), node_count, node_count - 2, key_count, rate, window);

  // Plain OpenDHT nodes, each on its own loopback address, chained bootstrap.
  std::vector<std::unique_ptr<dht::DhtRunner>> nodes;
  std::vector<std::string> addrs;
  for (int i = 0; i < node_count - 2; ++i) {
    auto runner = std::make_unique<dht::DhtRunner>();
    dht::DhtRunner::Config cfg;
    cfg.dht_config.id = dht::crypto::generateIdentity("bench", {}, 1024);
    cfg.threaded = true;
    // All bench nodes share one machine; OpenDHT's per-address rate limits would
    // throttle the benchmark itself, not the code under test.
    cfg.dht_config.node_config.max_req_per_sec = -1;
    cfg.dht_config.node_config.max_peer_req_per_sec = -1;
    std::string ip = "127.0.0.1";
    cfg.bind4 = dht::SockAddr::resolve(ip, "0").front();
    runner->run(cfg, {});
    runner->registerType(dht::ValueType(kRecordValueType, "annex-swarm record", kRecordLifetime));
    auto port = runner->getBoundPort(AF_INET);
    addrs.push_back(ip + ":" + std::to_string(port));
    if (i > 0) {
      auto join = [&](const std::string& hp) {
        runner->bootstrap(hp.substr(0, hp.find(':')), hp.substr(hp.find(':') + 1));
      };
      join(addrs[0]);
      join(addrs[i - 1]);
    }
    nodes.push_back(std::move(runner));
  }

  auto print_health = [&](const char* when) {
    std::vector<double> good;
    for (auto& n : nodes) good.push_back(n->getNodesStats(AF_INET).good_nodes);
    std::printf("plain nodes' routing tables %s: good nodes min %.0f, median %.0f, max %.0f\n", when,
                percentile(good, 0.0), percentile(good, 0.5), percentile(good, 0.999));
  };
  auto token = SwarmToken::generate();
  print_health("at start");
  auto t_fab = Clock::now();
  auto keys = fabricate_repo(dir / "repo", key_count);
  std::printf("fabricated %d objects in %.1fs\n", key_count, std::chrono::duration<double>(Clock::now() - t_fab).count());

  // Time to list present keys: our objects/ walk versus git-annex's own listing.
  {
    AnnexRepo repo;
    repo.git_dir = dir / "repo/.git";
    repo.objects_dir = repo.git_dir / "annex/objects";
    auto t0 = Clock::now();
    auto scan = scan_present_keys(repo);
    std::printf("scan of objects/ (warm): %zu keys in %.3fs\n", scan.keys.size(),
                std::chrono::duration<double>(Clock::now() - t0).count());
  }

  print_health("before the daemons start");
  auto serve_state = dir / "serve", ask_state = dir / "ask";
  auto t_start = Clock::now();
  pid_t server = spawn_daemon({"--state-dir", serve_state.string(), "--port", "0", "--listen", "127.0.0.1",
                               "--lan-discovery", "off", "--bootstrap", addrs[0], "--swarm", token.str(),
                               "--repo", (dir / "repo").string(), "--announce-rate", std::to_string(rate),
                               "--announce-window", std::to_string(window)},
                              dir / "serve.log");
  pid_t asker = spawn_daemon({"--state-dir", ask_state.string(), "--port", "0", "--listen", "127.0.0.1",
                              "--lan-discovery", "off", "--bootstrap", addrs[1], "--swarm", token.str()},
                             dir / "ask.log");

  // Announce: until the daemon reports every key confirmed on the DHT.
  double announce_seconds = -1;
  long last_print = -1;
  while (true) {
    auto st = ask(serve_state, {{"op", "status"}});
    if (st.is_object() && st.contains("repos") && !st["repos"].empty()) {
      auto announced = st["repos"][0]["swarms"][0]["announced"].get<long>();
      double elapsed = std::chrono::duration<double>(Clock::now() - t_start).count();
      if (static_cast<long>(elapsed) / 10 != last_print) {
        last_print = static_cast<long>(elapsed) / 10;
        std::printf("  t=%5.0fs announced %ld/%d, failed puts %ld\n", elapsed, announced, key_count,
                    st["announce"]["puts_failed"].get<long>());
        std::fflush(stdout);
      }
      if (announced >= key_count) {
        announce_seconds = elapsed;
        break;
      }
      if (elapsed > 900) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  long rss_kb = proc_kb(server, "VmRSS:"), hwm_kb = proc_kb(server, "VmHWM:");
  double daemon_cpu = cpu_seconds(server), network_cpu = cpu_seconds(getpid());
  print_health("after announce");

  // Retrievability and latency on a random sample, whereis vs plain get, interleaved.
  std::mt19937 rng(7);
  std::vector<std::string> picked = keys;
  std::shuffle(picked.begin(), picked.end(), rng);
  picked.resize(sample);
  std::vector<double> whereis_ms, get_ms;
  int found_whereis = 0, found_get = 0;
  auto client = ControlClient::connect(ask_state);
  auto& plain = *nodes[nodes.size() / 2];
  for (const auto& key : picked) {
    auto loc = token.bucket_location(token.key_index(AnnexKey::parse(key).value()).bucket);
    dht::InfoHash h;
    std::copy(loc.bytes.begin(), loc.bytes.end(), h.data());
    auto t0 = Clock::now();
    std::promise<std::size_t> done;
    auto count = std::make_shared<std::size_t>(0);
    plain.get(h, [count](const std::vector<std::shared_ptr<dht::Value>>& v) { *count += v.size(); return true; },
              [&done, count](bool) { done.set_value(*count); });
    auto n = done.get_future().get();
    get_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    found_get += n > 0;
    t0 = Clock::now();
    auto reply = client->request({{"op", "whereis"}, {"key", key}});
    if (reply && !(*reply).value("ok", false) && whereis_ms.empty())
      std::printf("whereis error: %s\n", reply->dump().c_str());
    whereis_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    found_whereis += reply && (*reply)["providers"].size() == 1;
  }

  auto ask_status = ask(ask_state, {{"op", "status"}});
  if (ask_status.is_object())
    std::printf("asking daemon: dht %s, ignored values %s\n", ask_status["dht"].dump().c_str(),
                ask_status["ignored_values"].dump().c_str());
  std::printf("\nRESULTS (%d nodes, %d keys)\n", node_count, key_count);
  std::printf("announce time            %.1f s (%.0f keys/s)\n", announce_seconds,
              announce_seconds > 0 ? key_count / announce_seconds : 0.0);
  std::printf("retrievable (whereis)    %d/%d = %.2f%%\n", found_whereis, sample, 100.0 * found_whereis / sample);
  std::printf("retrievable (plain get)  %d/%d = %.2f%%\n", found_get, sample, 100.0 * found_get / sample);
  std::printf("whereis latency          p50 %.2f ms  p95 %.2f ms\n", percentile(whereis_ms, 0.5), percentile(whereis_ms, 0.95));
  std::printf("plain OpenDHT get        p50 %.2f ms  p95 %.2f ms\n", percentile(get_ms, 0.5), percentile(get_ms, 0.95));
  std::printf("whereis/get p50 ratio    %.2f\n", percentile(whereis_ms, 0.5) / std::max(0.001, percentile(get_ms, 0.5)));
  std::printf("daemon RSS               %.1f MB now, %.1f MB peak\n", rss_kb / 1024.0, hwm_kb / 1024.0);
  std::printf("CPU during announce      daemon %.1f s (%.2f ms/key), simulated network %.1f s\n", daemon_cpu,
              1000.0 * daemon_cpu / key_count, network_cpu);

  kill(server, SIGTERM);
  kill(asker, SIGTERM);
  waitpid(server, nullptr, 0);
  waitpid(asker, nullptr, 0);
  for (auto& n : nodes) n->shutdown({}, true);
  for (auto& n : nodes) n->join();
  if (found_whereis == sample) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  } else {
    std::printf("kept %s for inspection (daemon logs inside)\n", dir.c_str());
  }
  return announce_seconds > 0 ? 0 : 1;
}
