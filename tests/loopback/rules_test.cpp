// Swarm rules across real daemons: an admin signs version 1 with a key made in the test
// and pushes it from one node; the five others pick it up from the DHT. Version 2, signed
// by the admin version 1 names, replaces it everywhere; what nobody may adopt is refused
// and counted on every node; a restarted node still holds version 2.
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <fstream>

#include "protocol/swarm_token.hpp"
#include "tests/support/gpg_home.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::test;
using nlohmann::json;

namespace {

struct RulesSwarm {
  GpgHome gpg;
  std::string alice = gpg.new_key("Alice <alice@example.org>");
  std::string bob = gpg.new_key("Bob <bob@example.org>");
  std::string mallory = gpg.new_key("Mallory <mallory@example.org>");
  TempDir dir;
  std::string token = SwarmToken::generate().str();
  std::string bootstrap;
  std::vector<std::unique_ptr<DaemonProcess>> nodes;

  RulesSwarm() {
    BOOST_REQUIRE_MESSAGE(alice.size() == 40 && bob.size() == 40 && mallory.size() == 40, "gpg made no keys");
    nodes.push_back(start_loopback_daemon(dir.path(), "n0", args("none")));
    bootstrap = "127.0.0.1:" + std::to_string(nodes[0]->port());
    for (int i = 1; i < 6; ++i) nodes.push_back(start(i));
  }
  std::vector<std::string> args(const std::string& boot) const {
    return {"--bootstrap", boot, "--swarm", token, "--rules-admin", alice, "--rules-check", "1s"};
  }
  std::unique_ptr<DaemonProcess> start(int i) {
    return start_loopback_daemon(dir.path(), "n" + std::to_string(i), args(bootstrap));
  }
  std::string document(int version, const std::string& next_admin, const std::string& expires = "2099-01-01") {
    return "version = " + std::to_string(version) + "\nexpires = " + expires + "\nadmin = " + next_admin +
           "\ngroup.home = " + nodes[1]->node_id() + " " + nodes[2]->node_id() + "\n";
  }
  // FILE.asc of `text` signed by `who`; and a file of every test key, public.
  std::string signed_file(const std::string& name, const std::string& who, const std::string& text) {
    auto path = dir.path() / (name + ".asc");
    std::ofstream(path) << gpg.clearsign(who, text);
    return path.string();
  }
  std::string keys_file() {
    auto path = dir.path() / "keys.asc";
    std::ofstream(path) << gpg.public_key(alice) + gpg.public_key(bob) + gpg.public_key(mallory);
    return path.string();
  }
  ProcessOutput push(const DaemonProcess& at, const std::string& file) {
    return annex_swarm({"rules", "push", file, "--keys", keys_file(), "--state-dir", at.state_dir().string()});
  }
  json show(const DaemonProcess& at) {
    auto out = annex_swarm({"rules", "show", "--json", "--state-dir", at.state_dir().string()});
    return out.exit_code == 0 ? json::parse(out.out) : json::object();
  }
  std::size_t holding(std::uint64_t version) {
    std::size_t n = 0;
    for (auto& node : nodes) n += show(*node).value("version", std::uint64_t{0}) == version;
    return n;
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(swarm_rules)

BOOST_AUTO_TEST_CASE(signed_rules_spread_to_every_member_and_only_an_admin_can_replace_them) {
  RulesSwarm s;
  // Version 1, signed by the admin every node's config names, pushed from one node. The
  // CLI finds the signer's key in the user's keyring when --keys is not given.
  auto v1 = s.signed_file("v1", s.alice, s.document(1, s.bob));
  ::setenv("GNUPGHOME", s.gpg.home().c_str(), 1);
  auto pushed = annex_swarm({"rules", "push", v1, "--state-dir", s.nodes[0]->state_dir().string()});
  ::unsetenv("GNUPGHOME");
  BOOST_REQUIRE_MESSAGE(pushed.exit_code == 0, pushed.out + pushed.err);
  BOOST_REQUIRE_MESSAGE(wait_until([&] { return s.holding(1) == 6; }, std::chrono::seconds(60)),
                        s.holding(1) << " of 6 nodes hold version 1");
  auto shown = s.show(*s.nodes[3]);
  BOOST_TEST(shown["signer"] == s.alice);
  BOOST_TEST(shown["admins"][0] == s.bob);
  BOOST_TEST(shown["expires"] == "2099-01-01");
  BOOST_TEST(s.show(*s.nodes[1])["this_node"]["groups"][0] == "home");

  // Version 2 by Bob, whom version 1 names, pushed from another node.
  auto v2 = s.signed_file("v2", s.bob, s.document(2, s.bob));
  auto second = s.push(*s.nodes[4], v2);
  BOOST_REQUIRE_MESSAGE(second.exit_code == 0, second.out + second.err);
  BOOST_REQUIRE_MESSAGE(wait_until([&] { return s.holding(2) == 6; }, std::chrono::seconds(60)),
                        s.holding(2) << " of 6 nodes hold version 2");

  // Refused on every node, each for its reason, and counted.
  auto by_stranger = s.signed_file("v3-mallory", s.mallory, s.document(3, s.mallory));
  auto expired = s.signed_file("v3-expired", s.bob, s.document(3, s.bob, "2020-01-01"));
  auto unsigned_v3 = (s.dir.path() / "v3-unsigned.txt").string();
  std::ofstream(unsigned_v3) << s.document(3, s.bob);
  auto altered = (s.dir.path() / "v3-altered.asc").string();
  {
    auto text = s.gpg.clearsign(s.bob, s.document(3, s.bob));
    text.replace(text.find("version = 3"), 11, "version = 4");
    std::ofstream(altered) << text;
  }
  for (auto& node : s.nodes) {
    for (const auto& file : {by_stranger, v1, expired, unsigned_v3, altered}) {
      auto r = s.push(*node, file);
      BOOST_TEST(r.exit_code == 1, file << " was not refused: " << r.out << r.err);
      BOOST_TEST(r.err.find("refused") != std::string::npos, r.err);
    }
    auto refused = s.show(*node)["refused"];
    BOOST_TEST(refused["not_an_admin"].get<int>() >= 1, refused.dump());
    BOOST_TEST(refused["rollback"].get<int>() >= 1, refused.dump());
    BOOST_TEST(refused["expired"].get<int>() >= 1, refused.dump());
    BOOST_TEST(refused["unsigned"].get<int>() >= 1, refused.dump());
    BOOST_TEST(refused["bad_signature"].get<int>() >= 1, refused.dump());
    BOOST_TEST(s.show(*node)["version"] == 2);
    BOOST_TEST(node->status()["rules"]["version"] == 2);  // status carries the rules too
  }

  // A node restarted after version 2 still holds it, and refuses version 1.
  s.nodes[5]->stop();
  BOOST_TEST(s.nodes[5]->wait_exit() == 0);  // as a restart does: the state dir is locked until then
  s.nodes[5] = s.start(5);
  // (It reads what it kept as it starts, on its worker thread: awaited, not assumed.)
  BOOST_TEST(wait_until([&] { return s.show(*s.nodes[5]).value("version", 0) == 2; }, std::chrono::seconds(30)));
  auto old = s.push(*s.nodes[5], v1);
  BOOST_TEST(old.exit_code == 1, old.out + old.err);
  BOOST_TEST(s.show(*s.nodes[5])["refused"]["rollback"].get<int>() >= 1);
}

BOOST_AUTO_TEST_SUITE_END()
