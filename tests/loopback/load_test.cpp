// A popular node (issue 21): more downloaders at once than it serves at once. Each waits
// its turn (a handshake slot, then a member slot, told "busy" and when to come back) and
// every download finishes, verified; the seeder never serves more members than its cap.
// Real daemons on 127.0.0.1, so every downloader comes from one address (the per-address
// handshake cap applies too).
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "protocol/swarm_token.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::test;
namespace fs = std::filesystem;
using nlohmann::json;

BOOST_AUTO_TEST_SUITE(load)

BOOST_AUTO_TEST_CASE(twelve_downloaders_at_once_of_a_seeder_that_serves_four_all_finish) {
  constexpr std::size_t kDownloaders = 12;
  TempDir dir;
  auto token = SwarmToken::generate().str();
  auto content = random_content(6u << 20, 21);
  auto repo = make_annex_repo(dir.path() / "repo", {{"popular.bin", content}});
  auto key = repo.key_of("popular.bin");
  auto seeder = start_loopback_daemon(dir.path(), "seeder", {"--bootstrap", "none", "--swarm", token, "--repo",
                                                              repo.path.string(), "--max-peers", "4"});
  auto bootstrap = "127.0.0.1:" + std::to_string(seeder->port());
  std::vector<std::unique_ptr<DaemonProcess>> downloaders;
  for (std::size_t i = 0; i < kDownloaders; ++i)
    downloaders.push_back(start_loopback_daemon(dir.path(), "d" + std::to_string(i), {"--bootstrap", bootstrap, "--swarm", token}));
  // Every downloader sees the seeder as the provider, and how to reach it (its contact
  // record), before they all start at once.
  for (auto& d : downloaders)
    BOOST_REQUIRE_MESSAGE(wait_until([&] {
                            auto out = annex_swarm({"whereis", key, "--json", "--state-dir", d->state_dir().string()});
                            if (out.exit_code != 0 || json::parse(out.out)["providers"].empty()) return false;
                            auto found = annex_swarm({"discover", repo.uuid, "--json", "--state-dir", d->state_dir().string()});
                            return found.exit_code == 0 && !json::parse(found.out)["nodes"].empty();
                          }),
                          "the seeder's records did not reach " << d->state_dir());
  std::vector<pid_t> gets;
  for (std::size_t i = 0; i < kDownloaders; ++i) {
    auto& d = *downloaders[i];
    gets.push_back(spawn_process({ANNEX_SWARM_BIN, "get", key, "--to", (dir.path() / ("got" + std::to_string(i))).string(),
                                  "--state-dir", d.state_dir().string()},
                                 (dir.path() / ("get" + std::to_string(i) + ".log")).string()));
    BOOST_REQUIRE(gets.back() > 0);
  }
  for (std::size_t i = 0; i < kDownloaders; ++i) {
    int status = 0;
    BOOST_REQUIRE(::waitpid(gets[i], &status, 0) == gets[i]);
    std::ifstream log(dir.path() / ("get" + std::to_string(i) + ".log"));
    std::string said((std::istreambuf_iterator<char>(log)), {});
    auto node_said = [&] {  // what the downloader's node said about this key
      std::string lines, all = downloaders[i]->log();
      std::istringstream in(all);
      for (std::string line; std::getline(in, line);)
        if (line.find(key) != std::string::npos || line.find("get ") != std::string::npos) lines += line + "\n";
      return lines;
    };
    BOOST_TEST_CONTEXT("downloader " << i << ": " << said << "its node:\n" << node_said()) {
      BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 0));
      std::ifstream got(dir.path() / ("got" + std::to_string(i)), std::ios::binary);
      BOOST_TEST((std::string((std::istreambuf_iterator<char>(got)), {}) == content));
    }
  }
  auto served = seeder->status()["peers_served"];
  BOOST_TEST_MESSAGE("seeder: " << served.dump());
  BOOST_TEST(served.value("links_open_peak", 0) <= 4);
  BOOST_TEST(served.value("links_open_peak", 0) >= 1);
  // The cap was met: members were told to come back, and none was cut off mid-handshake.
  BOOST_TEST(served.value("busy_refusals", 0) >= 1);
  BOOST_TEST(served.value("waited_too_long", 0) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
