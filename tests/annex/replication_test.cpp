// Replicated swarm stores under real gpg-signed rules and Debian's real git-annex: one
// `git annex copy --to` from a laptop's node, and the six keepers of the rules' group fill
// the store to the number of copies the rules ask for by themselves; a raise of copies, a
// lost keeper and a node taken out of the group move copies, never below the target; a
// keeper whose dotfile allows 10 MB is never chosen for a 32 MiB key.
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "protocol/swarm_token.hpp"
#include "tests/support/gpg_home.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

BOOST_TEST_GLOBAL_FIXTURE(AnnexEnvironment);

constexpr int kKeepers = 6;

struct ReplicatedStore {
  GpgHome gpg;
  std::string admin = gpg.new_key("Admin <admin@example.org>");
  TempDir dir;
  std::string token = SwarmToken::generate().str();
  std::string bootstrap;
  std::unique_ptr<DaemonProcess> first, laptop, limited;
  std::vector<std::unique_ptr<DaemonProcess>> keepers;
  test::AnnexRepo repo;
  std::string key, uuid;
  std::string content = random_content(32u << 20, 17);

  ReplicatedStore() {
    BOOST_REQUIRE_MESSAGE(admin.size() == 40, "gpg made no key");
    first = start_loopback_daemon(dir.path(), "first", args("none", "0"));
    bootstrap = "127.0.0.1:" + std::to_string(first->port());
    laptop = start_loopback_daemon(dir.path(), "laptop", args(bootstrap, "0"));
    for (int i = 0; i < kKeepers; ++i) keepers.push_back(start_keeper(i));
    // A seventh member of the group whose stores' dotfile allows 10 MB.
    auto limited_state = dir.path() / "state-limited";
    fs::create_directories(limited_state / "stores");
    std::ofstream(limited_state / "stores" / ".annex-swarm") << "storage = 10M\n";
    limited = start_loopback_daemon(dir.path(), "limited", args(bootstrap, "1G"));
    repo = make_annex_repo(dir.path() / "repo", {{"big.bin", content}});
    key = repo.key_of("big.bin");
    sh(repo.path, "git annex initremote swarm type=external externaltype=swarm swarm=" + token +
                      " statedir=" + laptop->state_dir().string() + " encryption=none");
    uuid = sh(repo.path, "git config remote.swarm.annex-uuid");
    uuid.erase(uuid.find_last_not_of("\n") + 1);
  }
  std::vector<std::string> args(const std::string& boot, const std::string& space) const {
    return {"--bootstrap", boot, "--swarm", token, "--store-space", space, "--rules-admin", admin,
            "--rules-check", "1s", "--replicate-interval", "1s"};
  }
  std::unique_ptr<DaemonProcess> start_keeper(int i) {
    return start_loopback_daemon(dir.path(), "keeper" + std::to_string(i), args(bootstrap, "1G"));
  }
  std::vector<DaemonProcess*> everyone() {
    std::vector<DaemonProcess*> out{first.get(), laptop.get(), limited.get()};
    for (auto& k : keepers) out.push_back(k.get());
    return out;
  }

  // Rules `version`: the group is every keeper but `left_out` (-1: none), and the limited node.
  void push_rules(int version, int copies, int left_out = -1) {
    std::ostringstream text;
    text << "version = " << version << "\nexpires = 2099-01-01\nadmin = " << admin << "\ngroup.home =";
    for (int i = 0; i < kKeepers; ++i)
      if (i != left_out) text << " " << keepers[i]->node_id();
    text << " " << limited->node_id() << "\nstore." << uuid << ".copies = " << copies << "\nstore." << uuid
         << ".keep-on = home\nstore." << uuid << ".grace = 3s\n";
    auto file = dir.path() / ("rules-v" + std::to_string(version) + ".asc");
    std::ofstream(file) << gpg.clearsign(admin, text.str());
    auto keys = dir.path() / "admin.asc";
    std::ofstream(keys) << gpg.public_key(admin);
    auto pushed = annex_swarm({"rules", "push", file.string(), "--keys", keys.string(), "--state-dir",
                               laptop->state_dir().string()});
    BOOST_REQUIRE_MESSAGE(pushed.exit_code == 0, pushed.out + pushed.err);
    auto holding = [&] {
      std::size_t n = 0;
      for (auto* d : everyone()) n += d->status()["rules"].value("version", 0) == version;
      return n;
    };
    BOOST_REQUIRE_MESSAGE(wait_until([&] { return holding() == everyone().size(); }, std::chrono::seconds(60)),
                          holding() << " of " << everyone().size() << " nodes hold rules version " << version);
  }

  // The node's copy of the key in the store, if it has one (not its partial fetches).
  std::optional<fs::path> copy_on(const DaemonProcess& d) const {
    std::error_code ec;
    auto objects = d.state_dir() / "stores" / uuid / "annex" / "objects";
    for (auto it = fs::recursive_directory_iterator(objects, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
      if (it->path().filename() == key && it->is_regular_file()) return it->path();
    return std::nullopt;
  }
  bool verified_copy_on(const DaemonProcess& d) const {
    auto path = copy_on(d);
    if (!path) return false;
    std::ifstream in(*path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    return bytes == content;
  }
  std::size_t keeper_copies(int except = -1) const {
    std::size_t n = 0;
    for (int i = 0; i < kKeepers; ++i) n += i != except && copy_on(*keepers[i]).has_value();
    return n;
  }
  std::uint64_t keepers_served() const {
    std::uint64_t n = 0;
    for (const auto& k : keepers) n += k->status()["peers_served"].value("bytes_served", std::uint64_t{0});
    return n;
  }
  std::uint64_t keepers_trimmed() const {
    std::uint64_t n = 0;
    for (const auto& k : keepers) n += k->status()["replication"].value("trimmed", std::uint64_t{0});
    return n;
  }
  int a_keeper_holding() const {
    for (int i = 0; i < kKeepers; ++i)
      if (copy_on(*keepers[i])) return i;
    return -1;
  }
  ProcessOutput annex(const std::string& command) const {
    return run_process({"sh", "-c", "cd '" + repo.path.string() + "' && " + command + " 2>&1"});
  }
  std::string logs() {
    std::string out;
    for (auto* d : everyone()) out += "---- " + d->state_dir().filename().string() + "\n" + d->log();
    return out;
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(replicated_store)

BOOST_AUTO_TEST_CASE(one_copy_up_and_the_keepers_fill_the_store_to_the_rules_target_and_keep_it_there) {
  ReplicatedStore s;
  BOOST_TEST_MESSAGE("nodes up");
  s.push_rules(1, 3);
  BOOST_TEST_MESSAGE("rules 1 held");

  // One copy goes up; three keepers end up with verified copies, the laptop's store
  // copy goes once they proved theirs, and the laptop sent about one copy.
  auto copy = s.annex("git annex copy --to swarm big.bin");
  BOOST_REQUIRE_MESSAGE(copy.exit_code == 0, copy.out + s.laptop->log());
  BOOST_REQUIRE_MESSAGE(wait_until([&] { return s.keeper_copies() == 3 && !s.copy_on(*s.laptop); },
                                   std::chrono::seconds(120)),
                        s.keeper_copies() << " keepers hold it; laptop " << (s.copy_on(*s.laptop) ? "too" : "not")
                                          << "\n" << s.logs());
  for (auto& k : s.keepers)
    if (s.copy_on(*k)) BOOST_TEST(s.verified_copy_on(*k), k->state_dir().string());
  BOOST_TEST(!s.copy_on(*s.limited));
  auto sent = s.laptop->status()["peers_served"].value("bytes_served", std::uint64_t{0});
  BOOST_TEST(sent <= s.content.size() * 13 / 10, "the laptop sent " << sent << " bytes");
  BOOST_TEST(sent >= s.content.size(), "the laptop sent " << sent << " bytes");
  // The copies went down a chain, each keeper serving the next: keepers sent two copies.
  BOOST_TEST(s.keepers_served() >= 2 * s.content.size(), "the keepers sent " << s.keepers_served() << " bytes");
  // A keeper's status shows the store once its sweep after the fetch ran.
  auto& holder = *s.keepers[s.a_keeper_holding()];
  BOOST_TEST(wait_until([&] {
    auto stores = holder.status()["replication"]["stores"];
    return stores.size() == 1 && stores[0]["copies"] == 3 && stores[0]["held"] == 1 && stores[0]["below_target"] == 0;
  }), holder.status()["replication"].dump());

  // git-annex counts the swarm's copies (once the keepers' announcements are out): the
  // laptop's own copy may go.
  BOOST_TEST(wait_until([&] { return s.annex("git annex checkpresentkey " + s.key + " swarm").exit_code == 0; },
                        std::chrono::seconds(60)));
  auto drop = s.annex("git annex drop big.bin");
  BOOST_REQUIRE_MESSAGE(drop.exit_code == 0, drop.out);

  BOOST_TEST_MESSAGE("three copies, laptop's dropped");
  // Version 2 asks for five copies: two more appear.
  s.push_rules(2, 5);
  BOOST_REQUIRE_MESSAGE(wait_until([&] { return s.keeper_copies() == 5; }, std::chrono::seconds(120)),
                        s.keeper_copies() << " keepers hold it\n" << s.logs());
  BOOST_TEST(!s.copy_on(*s.limited));

  // A keeper crashes: after the grace period another keeper takes its place. When it comes
  // back (with its copy), the copy beyond five goes, and there are never fewer than five.
  BOOST_TEST_MESSAGE("five copies");
  int lost = s.a_keeper_holding();
  s.keepers[lost]->kill_hard();
  s.keepers[lost]->wait_exit();
  BOOST_REQUIRE_MESSAGE(wait_until([&] { return s.keeper_copies(lost) == 5; }, std::chrono::seconds(120)),
                        s.keeper_copies(lost) << " live keepers hold it\n" << s.logs());
  BOOST_TEST(!s.copy_on(*s.limited));
  BOOST_TEST_MESSAGE("replaced the lost keeper");
  s.keepers[lost] = s.start_keeper(lost);
  std::size_t fewest = 6;
  BOOST_REQUIRE_MESSAGE(wait_until(
                            [&] {
                              auto n = s.keeper_copies();
                              fewest = std::min(fewest, n);
                              return n == 5;
                            },
                            std::chrono::seconds(120)),
                        s.keeper_copies() << " keepers hold it\n" << s.logs());
  BOOST_TEST(fewest >= 5u);
  // Exactly one copy was trimmed on the way (the stand-in's, once the keeper was back):
  // polling could miss a dip, the counters cannot.
  BOOST_TEST(s.keepers_trimmed() == 1u);

  // Version 3 takes a holder out of the group: it keeps its copy until a replacement
  // holds one, so five remain.
  BOOST_TEST_MESSAGE("back to five");
  int out = s.a_keeper_holding();
  s.push_rules(3, 5, out);
  bool early = false;
  BOOST_REQUIRE_MESSAGE(wait_until(
                            [&] {
                              auto others = s.keeper_copies(out);
                              bool kept = s.copy_on(*s.keepers[out]).has_value();
                              if (!kept && others < 5) early = true;
                              return !kept && others == 5;
                            },
                            std::chrono::seconds(120)),
                        s.keeper_copies(out) << " others hold it\n" << s.logs());
  BOOST_TEST(!early, "the node left out dropped its copy before a replacement held one");
  BOOST_TEST(s.keepers_trimmed() == 2u);
  BOOST_TEST(!s.copy_on(*s.limited));

  BOOST_TEST_MESSAGE("left-out node trimmed");
  // And the object comes back whole.
  auto get = s.annex("git annex get big.bin");
  BOOST_REQUIRE_MESSAGE(get.exit_code == 0, get.out);
  BOOST_TEST(s.annex("git annex fsck big.bin").exit_code == 0);
}

BOOST_AUTO_TEST_SUITE_END()
