// Erasure-coded swarm stores under Debian's real git-annex: a remote set up with
// shares=4+2 over six holder nodes keeps one share on each (1.5x in all), survives two
// lost holders, refuses a drop on the word of fewer than K live shares (from the uploading
// clone and from another), and replaces a share that is corrupt on disk.
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <fstream>
#include <random>
#include <regex>

#include "protocol/swarm_token.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

BOOST_TEST_GLOBAL_FIXTURE(AnnexEnvironment);

// A bootstrap node and the laptop's node (both offering no space), and six holders.
struct SixHolders {
  TempDir dir;
  std::string token = SwarmToken::generate().str();
  std::unique_ptr<DaemonProcess> first, laptop;
  std::vector<std::unique_ptr<DaemonProcess>> holders;
  AnnexRepo repo;
  std::string key;
  std::string content = random_content(48u << 20, 11);

  std::string bootstrap;

  std::vector<std::string> holder_args;  // beyond the swarm's and the space offered

  explicit SixHolders(std::vector<std::string> extra = {}) : holder_args(std::move(extra)) {
    first = start_loopback_daemon(dir.path(), "first", {"--bootstrap", "none", "--swarm", token, "--store-space", "0"});
    bootstrap = "127.0.0.1:" + std::to_string(first->port());
    laptop = start_loopback_daemon(dir.path(), "laptop", {"--bootstrap", bootstrap, "--swarm", token, "--store-space", "0"});
    for (int i = 0; i < 6; ++i) add_holder();
    // The laptop sees all six with room before it stores.
    BOOST_REQUIRE_MESSAGE(wait_until([&] { return offering() == 6; }, std::chrono::seconds(90)),
                          "the laptop sees " << offering() << " members offering space");
    repo = make_annex_repo(dir.path() / "repo", {{"big.bin", content}});
    key = repo.key_of("big.bin");
    sh(repo.path, "git annex initremote cloud type=external externaltype=swarm swarm=" + token +
                      " statedir=" + laptop->state_dir().string() + " encryption=none shares=4+2");
  }
  void add_holder() {
    std::vector<std::string> args{"--bootstrap", bootstrap, "--swarm", token, "--store-space", "1G"};
    args.insert(args.end(), holder_args.begin(), holder_args.end());
    holders.push_back(start_loopback_daemon(dir.path(), "holder" + std::to_string(holders.size()), args));
  }
  // big.bin goes to the store; holders 1 and 4 are lost; two new nodes join.
  void store_then_lose_two_and_add_two() {
    auto copy = annex("git annex copy --to cloud big.bin");
    BOOST_REQUIRE_MESSAGE(copy.exit_code == 0, copy.out + laptop->log());
    holders[1]->kill_hard();
    holders[4]->kill_hard();
    add_holder();
    add_holder();
  }
  // After a repair the rebuilt shares are real: with two more of the first holders gone
  // (four of six holders were replaced or lost), the object comes back.
  void comes_back_without_holders_0_and_2() {
    holders[0]->kill_hard();
    holders[2]->kill_hard();
    sh(repo.path, "git annex drop --force big.bin");
    auto get = annex("git annex get big.bin");
    BOOST_REQUIRE_MESSAGE(get.exit_code == 0, get.out + laptop->log());
    BOOST_TEST(annex("git annex fsck big.bin").exit_code == 0);
  }
  std::size_t offering() const {
    auto out = annex_swarm({"peers", "--json", "--state-dir", laptop->state_dir().string()});
    if (out.exit_code != 0) return 0;
    std::size_t n = 0;
    auto reply = json::parse(out.out);  // a range-for over a temporary's member would dangle
    for (const auto& p : reply["peers"]) n += p.value("store_offer", std::uint64_t{0}) > 0;
    return n;
  }
  ProcessOutput annex(const std::string& command) const {
    return run_process({"sh", "-c", "cd '" + repo.path.string() + "' && " + command + " 2>&1"});
  }
  // Share objects in a node's stores, with their sizes.
  static std::vector<std::uint64_t> shares_on(const DaemonProcess& d) {
    std::vector<std::uint64_t> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(d.state_dir() / "stores", ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
      if (it->is_regular_file() && it->path().filename().string().starts_with("SWARMSHARE-"))
        out.push_back(it->file_size());
    return out;
  }
  static std::vector<fs::path> share_files_on(const DaemonProcess& d) {
    std::vector<fs::path> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(d.state_dir() / "stores", ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
      if (it->is_regular_file() && it->path().filename().string().starts_with("SWARMSHARE-")) out.push_back(it->path());
    return out;
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(erasure_store)

BOOST_AUTO_TEST_CASE(a_4_plus_2_store_puts_one_share_on_each_of_six_nodes_and_survives_two_lost) {
  SixHolders s;
  auto copy = s.annex("git annex copy --to cloud big.bin");
  BOOST_REQUIRE_MESSAGE(copy.exit_code == 0, copy.out + s.laptop->log());
  // One ~12 MiB share on each holder, 1.5x the object in all; none left on the laptop.
  std::uint64_t total = 0;
  for (const auto& h : s.holders) {
    auto shares = SixHolders::shares_on(*h);
    BOOST_REQUIRE_EQUAL(shares.size(), 1u);
    BOOST_TEST(shares[0] == 12u << 20);
    total += shares[0];
  }
  BOOST_TEST(total * 2 == s.content.size() * 3);
  BOOST_TEST(SixHolders::shares_on(*s.laptop).empty());
  BOOST_TEST(SixHolders::shares_on(*s.first).empty());

  // whereis names the store and counts its live shares.
  auto live_shares = [&] {
    auto out = annex_swarm({"whereis", s.key, "--json", "--state-dir", s.laptop->state_dir().string()});
    BOOST_REQUIRE_MESSAGE(out.exit_code == 0, out.out + out.err);
    auto reply = json::parse(out.out);
    BOOST_REQUIRE_EQUAL(reply["shares"].size(), 1u);
    BOOST_TEST(reply["shares"][0]["shares"].get<std::string>() == "4+2");
    BOOST_TEST(reply["shares"][0]["n"].get<int>() == 6);
    return reply["shares"][0]["live"].get<int>();
  };
  BOOST_TEST(live_shares() == 6);

  // The uploader past its audits (16 a key, each used once) still gets answers: spot checks.
  for (int i = 0; i < 17; ++i) {
    auto present = s.annex("git annex checkpresentkey " + s.key + " cloud");
    BOOST_REQUIRE_MESSAGE(present.exit_code == 0, "check " << i << ": " << present.out << s.laptop->log());
  }
  // Another clone with its own node has no audits: each holder shows a random chunk of its
  // share, checked against the manifest the share's key pins.
  sh(s.dir.path(), "git clone -q repo clone && cd clone && git annex init -q clone");
  auto desktop = start_loopback_daemon(s.dir.path(), "desktop",
                                       {"--bootstrap", s.bootstrap, "--swarm", s.token, "--store-space", "0"});
  auto clone = s.dir.path() / "clone";
  sh(clone, "git annex enableremote cloud statedir=" + desktop->state_dir().string() + " 2>&1");
  auto clone_check = [&] {
    return run_process({"sh", "-c", "cd '" + clone.string() + "' && git annex checkpresentkey " + s.key + " cloud 2>&1"});
  };
  ProcessOutput last;
  BOOST_REQUIRE_MESSAGE(wait_until([&] { return (last = clone_check()).exit_code == 0; }, std::chrono::seconds(90)),
                        last.out << desktop->log());

  // Two holders crash; the local copy goes (four live shares are enough to count).
  s.holders[0]->kill_hard();
  s.holders[3]->kill_hard();
  BOOST_TEST(live_shares() == 4);
  last = clone_check();
  BOOST_TEST(last.exit_code == 0, last.out << desktop->log());
  auto drop = s.annex("git annex drop big.bin");
  BOOST_REQUIRE_MESSAGE(drop.exit_code == 0, drop.out + s.laptop->log());
  auto get = s.annex("git annex get big.bin");
  BOOST_REQUIRE_MESSAGE(get.exit_code == 0, get.out + s.laptop->log());
  auto fsck = s.annex("git annex fsck big.bin");
  BOOST_TEST(fsck.exit_code == 0, fsck.out);

  // A third holder gone: three shares cannot rebuild it, so it is not counted present,
  // and the last local copy stays.
  s.holders[5]->kill_hard();
  auto present = s.annex("git annex checkpresentkey " + s.key + " cloud");
  BOOST_TEST(present.exit_code != 0, present.out);
  // From the clone too: the unreachable holders could make the difference, so "cannot
  // check" (git-annex exits 100), never present; the chunks it fetched to check are gone.
  last = clone_check();
  BOOST_TEST(last.exit_code == 100, last.exit_code << ": " << last.out);
  std::error_code ec;
  BOOST_TEST(fs::is_empty(desktop->state_dir() / "spot-checks", ec));
  auto refused = s.annex("git annex drop big.bin");
  BOOST_TEST(refused.exit_code != 0, refused.out);
  BOOST_TEST(fs::exists(s.repo.path / "big.bin"));
  BOOST_TEST(s.annex("git annex fsck big.bin").exit_code == 0);
}

BOOST_AUTO_TEST_CASE(after_two_holders_are_lost_and_two_nodes_join_repair_brings_back_six_shares_on_six_nodes) {
  SixHolders s;
  s.store_then_lose_two_and_add_two();
  // The newcomers' records (with their offers) reach the laptop.
  BOOST_REQUIRE(wait_until([&] { return s.offering() >= 6; }, std::chrono::seconds(90)));
  auto uuid = sh(s.repo.path, "git config remote.cloud.annex-uuid");
  uuid.erase(uuid.find_last_not_of("\n") + 1);
  auto repair = annex_swarm({"repair", s.key, "--store", uuid, "--json", "--state-dir", s.laptop->state_dir().string()});
  BOOST_REQUIRE_MESSAGE(repair.exit_code == 0, repair.out + repair.err + s.laptop->log());
  auto reply = json::parse(repair.out);
  BOOST_TEST(reply["live_before"].get<int>() == 4);
  BOOST_TEST(reply["live_after"].get<int>() == 6);
  // One share on each of six live nodes: the four left and the two newcomers.
  std::size_t nodes_with_a_share = 0;
  for (std::size_t i = 0; i < s.holders.size(); ++i) {
    if (i == 1 || i == 4) continue;
    auto shares = SixHolders::shares_on(*s.holders[i]);
    BOOST_TEST(shares.size() == 1u, "holder " << i);
    nodes_with_a_share += shares.size() == 1;
  }
  BOOST_TEST(nodes_with_a_share == 6u);
  BOOST_TEST(SixHolders::shares_on(*s.laptop).empty());
  s.comes_back_without_holders_0_and_2();
  // A second repair finds two holders gone again and has nowhere to put their shares.
  auto again = annex_swarm({"repair", s.key, "--store", uuid, "--json", "--state-dir", s.laptop->state_dir().string()});
  BOOST_TEST(again.exit_code != 0, again.out);
  // So does a repair of every key of the store: one key, kept here, not repaired, and why.
  auto all = annex_swarm({"repair", "--all", "--store", uuid, "--json", "--state-dir", s.laptop->state_dir().string()});
  BOOST_TEST(all.exit_code != 0, all.out);
  auto summary = json::parse(all.out);
  BOOST_TEST(summary["keys"].get<int>() == 1);
  BOOST_TEST(summary["failed"].size() == 1u);
  BOOST_TEST(summary["failed"].contains(s.key), all.out);
}

BOOST_AUTO_TEST_CASE(holders_repair_a_key_by_themselves_after_two_are_lost_and_two_nodes_join) {
  SixHolders s({"--repair-interval", "2s"});
  s.store_then_lose_two_and_add_two();
  // Nobody asks: a live holder finds the key two shares short and places them again.
  auto live_with_a_share = [&] {
    std::size_t n = 0;
    for (std::size_t i = 0; i < s.holders.size(); ++i)
      if (i != 1 && i != 4) n += !SixHolders::shares_on(*s.holders[i]).empty();
    return n;
  };
  // `status` says so: a holder counted the repair. It counts it once every share is placed
  // and its own copies of the shares it gave away are gone, so that is what the test awaits
  // (before it, the repairing holder briefly keeps the shares it rebuilt as well).
  auto repaired = [&] {
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < s.holders.size(); ++i)
      if (i != 1 && i != 4) n += s.holders[i]->status()["repairs"]["repaired"].get<std::uint64_t>();
    return n;
  };
  BOOST_REQUIRE_MESSAGE(wait_until([&] { return repaired() >= 1; }, std::chrono::seconds(120)),
                        "no holder repaired the key; " << live_with_a_share() << " live nodes hold a share");
  BOOST_TEST(live_with_a_share() == 6u);
  for (std::size_t i = 0; i < s.holders.size(); ++i)
    if (i != 1 && i != 4)
      BOOST_TEST(SixHolders::shares_on(*s.holders[i]).size() == 1u, "holder " << i << ": " << s.holders[i]->log());
  // The holder that repaired lists the key in `status` with every share live again.
  bool listed = false;
  for (std::size_t i = 0; i < s.holders.size(); ++i) {
    if (i == 1 || i == 4) continue;
    auto status = s.holders[i]->status();
    if (status["repairs"]["repaired"].get<std::uint64_t>() == 0) continue;
    for (const auto& k : status["repairs"]["keys"])
      if (k["key"] == s.key) {
        listed = true;
        BOOST_TEST(k["live"].get<int>() == 6, k.dump());
        BOOST_TEST(k["shares"].get<int>() == 6, k.dump());
      }
  }
  BOOST_TEST(listed);
  s.comes_back_without_holders_0_and_2();
}

BOOST_AUTO_TEST_CASE(a_share_corrupt_on_disk_is_reported_and_the_object_still_comes_back) {
  SixHolders s;
  auto copy = s.annex("git annex copy --to cloud big.bin");
  BOOST_REQUIRE_MESSAGE(copy.exit_code == 0, copy.out + s.laptop->log());
  // The holder of share 0 has it spoilt on disk.
  std::string map;
  for (auto it = fs::recursive_directory_iterator(s.holders[0]->state_dir() / "stores"); it != fs::recursive_directory_iterator(); ++it)
    if (it->is_regular_file() && it->path().filename().string().starts_with("SWARMMAP-")) {
      std::ifstream in(it->path());
      map.assign(std::istreambuf_iterator<char>(in), {});
    }
  auto at = map.find("\nshare ");
  BOOST_REQUIRE(at != std::string::npos);
  auto share0 = map.substr(at + 7, map.find('\n', at + 1) - at - 7);
  fs::path victim;
  for (const auto& h : s.holders)
    for (const auto& f : SixHolders::share_files_on(*h))
      if (f.filename() == share0) victim = f;
  BOOST_REQUIRE_MESSAGE(!victim.empty(), "no holder has " << share0);
  {
    // Every unit spoilt (a byte flipped in each), so whichever segments a get asks of
    // this share, it meets a bad one.
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    for (std::streamoff unit = 0; unit < 12; ++unit) {
      f.seekg((unit << 20) + 777);
      char c = static_cast<char>(f.get());
      f.seekp((unit << 20) + 777);
      f.put(static_cast<char>(c ^ 0x5a));
    }
  }
  sh(s.repo.path, "git annex drop --force big.bin");
  // The object comes back from the other shares whichever share was spoilt.
  auto get = s.annex("git annex get big.bin");
  BOOST_REQUIRE_MESSAGE(get.exit_code == 0, get.out + s.laptop->log());
  BOOST_TEST(s.annex("git annex fsck big.bin").exit_code == 0);
  // The spoilt share was noticed and named, and another share took its place.
  BOOST_TEST(s.laptop->log().find("offers other bytes than the share its key names") != std::string::npos,
             s.laptop->log());
}

// git-annex's own acceptance suite against the erasure-coded remote (the fast variant:
// every key size and chunking once; the full run's encryption variants add only gpg work
// on git-annex's side, which the whole-copy remote's full run covers).
BOOST_AUTO_TEST_CASE(testremote_passes_against_a_4_plus_2_remote) {
  SixHolders s;
  auto out = s.annex("git annex testremote cloud --fast");
  std::smatch m;
  static const std::regex line(R"((All \d+ tests passed|\d+ out of \d+ tests failed))");
  auto closing = std::regex_search(out.out, m, line) ? m.str() : out.out.substr(out.out.size() > 4000 ? out.out.size() - 4000 : 0);
  BOOST_TEST_MESSAGE("testremote --fast, shares=4+2: " << closing);
  BOOST_TEST(out.exit_code == 0, closing + s.laptop->log());
  BOOST_TEST(closing.rfind("All ", 0) == 0u, closing);
}

BOOST_AUTO_TEST_SUITE_END()
