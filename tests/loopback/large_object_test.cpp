// Objects of any size: a 9 GiB object (a sparse VM image, as a git-annex user adds one)
// goes from one node to another, verified end to end. Its manifest takes three pages;
// no frame passes the cap. Label `large`: it runs in the main test run, not under the
// sanitizers.
#include <boost/test/unit_test.hpp>

#include <sys/statvfs.h>

#include "protocol/annex_key.hpp"
#include "protocol/swarm_token.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {
constexpr std::uint64_t kSize = 9ull << 30;
// What `truncate -s 9G vm.img && git annex add vm.img` makes of it (git-annex takes about a
// minute to hash it here; the object is put in place directly instead).
constexpr std::string_view kKey =
    "SHA256E-s9663676416--cfbee1b311082090f6417b1026f9f83b2b3db46bc20ec64dff238d202c3782a6.img";

std::uint64_t free_bytes(const std::filesystem::path& p) {
  struct statvfs st {};
  if (::statvfs(p.c_str(), &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(large_objects)

BOOST_AUTO_TEST_CASE(a_9_gib_object_is_fetched_and_verified_end_to_end) {
  TempDir dir;
  // The copy is written for real (the partial file is not sparse): it needs the room.
  if (free_bytes(dir.path()) < kSize + (2ull << 30)) {
    BOOST_TEST_MESSAGE("skipped: a 9 GiB copy needs " << (kSize >> 30) + 2 << " GiB free in " << dir.path());
    return;
  }
  auto swarm = SwarmToken::generate().str();
  auto first = start_loopback_daemon(dir.path(), "first", {"--bootstrap", "none", "--swarm", swarm});
  auto bootstrap = "127.0.0.1:" + std::to_string(first->port());
  auto repo = make_annex_repo(dir.path() / "repo", {});
  std::string key(kKey);
  auto object = repo.path / ".git/annex/objects" / AnnexKey::parse(key).value().hash_dir_mixed() / key / key;
  std::filesystem::create_directories(object.parent_path());
  sh(repo.path, "truncate -s 9G '" + object.string() + "'");
  auto seeder = start_loopback_daemon(dir.path(), "seeder",
                                      {"--bootstrap", bootstrap, "--swarm", swarm, "--repo", repo.path.string()});
  auto downloader = start_loopback_daemon(dir.path(), "downloader", {"--bootstrap", bootstrap, "--swarm", swarm});
  BOOST_REQUIRE(wait_until([&] {
    return annex_swarm({"whereis", key, "--state-dir", downloader->state_dir().string()}).exit_code == 0;
  }, 120s));
  auto to = dir.path() / "vm.img";
  auto out = annex_swarm({"get", key, "--to", to.string(), "--json", "--state-dir", downloader->state_dir().string()});
  BOOST_REQUIRE_MESSAGE(out.exit_code == 0, out.err + "\n" + downloader->log().substr(0, 4000));
  auto reply = json::parse(out.out);
  BOOST_TEST(reply["bytes_fetched"].get<std::uint64_t>() == kSize);
  BOOST_TEST(std::filesystem::file_size(to) == kSize);  // and its hash matched the key, or get failed
  BOOST_TEST(seeder->status()["peers_served"]["manifests_hashed"].get<int>() == 1);
  std::filesystem::remove(to);  // 9 GiB: not a moment longer than needed
}

BOOST_AUTO_TEST_SUITE_END()
