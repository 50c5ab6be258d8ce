// git-annex-remote-swarm under Debian's real git-annex: testremote against a two-node
// swarm, a repository reached through the swarm with --sameas, multi-source retrieval,
// and CHECKPRESENT that never counts another repository's annex as a swarm-store copy.
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <regex>
#include <thread>

#include "protocol/swarm_token.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

BOOST_TEST_GLOBAL_FIXTURE(AnnexEnvironment);

struct Swarm {
  TempDir dir;
  std::string token = SwarmToken::generate().str();
  std::unique_ptr<DaemonProcess> first;
  std::string bootstrap;

  Swarm() {
    first = start_loopback_daemon(dir.path(), "first", {"--bootstrap", "none", "--swarm", token});
    bootstrap = "127.0.0.1:" + std::to_string(first->port());
  }
  std::unique_ptr<DaemonProcess> node(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"--bootstrap", bootstrap, "--swarm", token};
    args.insert(args.end(), extra.begin(), extra.end());
    return start_loopback_daemon(dir.path(), name, args);
  }
  std::string initremote(const fs::path& repo, const std::string& name, const DaemonProcess& daemon,
                         const std::string& extra = "") {
    return sh(repo, "git annex initremote " + name + " type=external externaltype=swarm swarm=" + token +
                        " statedir=" + daemon.state_dir().string() + " encryption=none " + extra + " 2>&1");
  }
};

// The closing line of `git annex testremote`.
std::string closing_line(const std::string& output) {
  std::smatch m;
  static const std::regex line(R"((All \d+ tests passed|\d+ out of \d+ tests failed))");
  return std::regex_search(output, m, line) ? m.str() : "no closing line in:\n" + output.substr(output.size() > 4000 ? output.size() - 4000 : 0);
}

std::uint64_t bytes_served(const DaemonProcess& d) {
  return d.status()["peers_served"]["bytes_served"].get<std::uint64_t>();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(special_remote)

BOOST_AUTO_TEST_CASE(testremote_passes_against_a_two_node_swarm) {
  Swarm swarm;
  auto local = swarm.node("local");
  auto repo = make_annex_repo(swarm.dir.path() / "repo", {});
  swarm.initremote(repo.path, "swarm", *local);
  // The full run, as a user would start it (it spends ~3 min in git-annex's own gpg work
  // for the encrypted variants). Objects of many chunks are the large and get suites' work.
  auto out = run_process({"sh", "-c", "cd '" + repo.path.string() + "' && git annex testremote swarm 2>&1"});
  BOOST_TEST_MESSAGE("testremote: " << closing_line(out.out));
  BOOST_TEST(out.exit_code == 0, closing_line(out.out));
  BOOST_TEST(closing_line(out.out).rfind("All ", 0) == 0u, closing_line(out.out));
}

BOOST_AUTO_TEST_CASE(a_repository_behind_an_unreachable_url_is_reached_through_the_swarm_from_two_nodes) {
  Swarm swarm;
  // Repository A (the home server) and C (another copy) both hold big.bin; B is a clone
  // whose URL for A no longer works.
  auto content = random_content(12u << 20, 7);
  auto a = make_annex_repo(swarm.dir.path() / "a", {{"big.bin", content}});
  auto key = a.key_of("big.bin");
  auto c_path = swarm.dir.path() / "c";
  sh(swarm.dir.path(), "git clone -q a c && cd c && git annex init -q c && git annex get -q big.bin");
  auto b_path = swarm.dir.path() / "b";
  sh(swarm.dir.path(), "git clone -q a b && cd b && git annex init -q b");
  // B has used A before (knows its UUID), then A's URL stopped working.
  sh(b_path, "git config remote.origin.annex-uuid " + a.uuid);
  sh(b_path, "git remote set-url origin " + (swarm.dir.path() / "moved-away").string());
  auto home = swarm.node("home", {"--repo", a.path.string()});
  auto other = swarm.node("other", {"--repo", c_path.string()});
  auto mine = swarm.node("mine");
  BOOST_REQUIRE(wait_until([&] {
    auto out = annex_swarm({"whereis", key, "--json", "--state-dir", mine->state_dir().string()});
    return out.exit_code == 0 && json::parse(out.out)["providers"].size() == 2;
  }));
  swarm.initremote(b_path, "home-swarm", *mine, "--sameas=origin");
  auto got = run_process({"sh", "-c", "cd '" + b_path.string() + "' && git annex get big.bin 2>&1"});
  BOOST_REQUIRE_MESSAGE(got.exit_code == 0, got.out + mine->log());
  BOOST_TEST(got.out.find("home-swarm") != std::string::npos, got.out);
  sh(b_path, "git annex fsck big.bin");
  // Bytes came from both nodes holding the key.
  BOOST_TEST(bytes_served(*home) > 0u);
  BOOST_TEST(bytes_served(*other) > 0u);
  // The sameas remote asks A's node: present there, and not for a key A lacks.
  sh(b_path, "git annex checkpresentkey " + key + " home-swarm");
  auto absent = run_process({"sh", "-c", "cd '" + b_path.string() + "' && git annex checkpresentkey SHA256E-s1--" +
                                             std::string(64, 'a') + " home-swarm"});
  BOOST_TEST(absent.exit_code == 1, absent.out + absent.err);
  // It stands for a repository: storing into it through the swarm is refused clearly.
  std::ofstream(b_path / "new.txt") << "made in B\n";
  sh(b_path, "git annex add -q new.txt");
  auto refused = run_process({"sh", "-c", "cd '" + b_path.string() + "' && git annex copy --to home-swarm new.txt 2>&1"});
  BOOST_TEST(refused.exit_code != 0);
  BOOST_TEST(refused.out.find("stands for repository") != std::string::npos, refused.out);
}

// Issue 19: git-annex hashes its RETRIEVE file while the remote writes it, if the bytes come
// in order. Three nodes hold a 64 MiB object, one of them slow (so chunks arrive out of
// order); the file grows in order during the transfer (seen growing from outside), and
// git-annex's own verification and fsck pass.
BOOST_AUTO_TEST_CASE(retrieve_writes_the_object_in_order_while_it_downloads_from_three_nodes) {
  Swarm swarm;
  auto content = random_content(64u << 20, 19);
  auto a = make_annex_repo(swarm.dir.path() / "a", {{"big.bin", content}});
  auto key = a.key_of("big.bin");
  for (const char* copy : {"c", "d"})
    sh(swarm.dir.path(), std::string("git clone -q a ") + copy + " && cd " + copy + " && git annex init -q " + copy +
                             " && git annex get -q big.bin");
  auto b_path = swarm.dir.path() / "b";
  sh(swarm.dir.path(), "git clone -q a b && cd b && git annex init -q b");
  sh(b_path, "git config remote.origin.annex-uuid " + a.uuid);
  sh(b_path, "git remote set-url origin " + (swarm.dir.path() / "moved-away").string());
  auto home = swarm.node("home", {"--repo", a.path.string(), "--upload-rate", "6M"});  // the slow one
  auto c = swarm.node("c", {"--repo", (swarm.dir.path() / "c").string()});
  auto d = swarm.node("d", {"--repo", (swarm.dir.path() / "d").string()});
  auto mine = swarm.node("mine");
  BOOST_REQUIRE(wait_until([&] {
    auto out = annex_swarm({"whereis", key, "--json", "--state-dir", mine->state_dir().string()});
    return out.exit_code == 0 && json::parse(out.out)["providers"].size() == 3;
  }));
  swarm.initremote(b_path, "home-swarm", *mine, "--sameas=origin");
  auto log = swarm.dir.path() / "get.log";
  pid_t get = spawn_process({"sh", "-c", "cd '" + b_path.string() + "' && exec git annex get --debug big.bin"}, log.string());
  BOOST_REQUIRE(get > 0);
  // git-annex's file for the transfer, watched from outside while it grows.
  auto file = b_path / ".git" / "annex" / "tmp" / key;
  std::vector<std::uintmax_t> sizes;
  int status = 0;
  while (::waitpid(get, &status, WNOHANG) == 0) {
    std::error_code ec;
    auto size = fs::file_size(file, ec);
    if (!ec && (sizes.empty() || sizes.back() != size)) sizes.push_back(size);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // sampling a file's size, not awaiting a condition
  }
  std::ifstream in(log);
  std::string said((std::istreambuf_iterator<char>(in)), {});
  BOOST_REQUIRE_MESSAGE(WIFEXITED(status) && WEXITSTATUS(status) == 0, said.substr(said.size() > 6000 ? said.size() - 6000 : 0) + mine->log());
  sh(b_path, "git annex fsck big.bin");
  std::ifstream got(b_path / "big.bin", std::ios::binary);
  BOOST_TEST((std::string((std::istreambuf_iterator<char>(got)), {}) == content));
  // It grew, never shrank, and was seen part-way more than once.
  std::size_t partway = 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (i > 0) BOOST_TEST(sizes[i] >= sizes[i - 1]);
    partway += sizes[i] > 0 && sizes[i] < content.size();
  }
  BOOST_TEST_MESSAGE("git-annex's file seen at " << partway << " sizes part-way, " << sizes.size() << " in all");
  BOOST_TEST(partway >= 3u, "sizes seen: " << sizes.size());
  // git-annex heard PROGRESS climbing, and every node served some of it.
  BOOST_TEST(said.find("PROGRESS") != std::string::npos);
  BOOST_TEST(bytes_served(*home) > 0u);
  BOOST_TEST(bytes_served(*c) > 0u);
  BOOST_TEST(bytes_served(*d) > 0u);
}

BOOST_AUTO_TEST_CASE(a_member_claiming_copies_it_does_not_hold_cannot_make_a_drop_lose_data) {
  Swarm swarm;
  // A (the home server, offline for now) holds big.bin; B is a clone with the file and a
  // sameas remote for A. A liar serves a repository that claims A's UUID, holds nothing,
  // and says "held" to every question.
  auto content = random_content(2u << 20, 5);
  auto a = make_annex_repo(swarm.dir.path() / "a", {{"big.bin", content}});
  auto key = a.key_of("big.bin");
  auto b_path = swarm.dir.path() / "b";
  sh(swarm.dir.path(), "git clone -q a b && cd b && git annex init -q b && git annex get -q big.bin");
  sh(b_path, "git remote set-url origin " + (swarm.dir.path() / "moved-away").string());
  auto fake = swarm.dir.path() / "fake";
  sh(swarm.dir.path(), "git clone -q a fake && cd fake && git config annex.uuid " + a.uuid + " && git annex init -q fake");
  auto mine = swarm.node("mine");
  swarm.initremote(b_path, "home-swarm", *mine, "--sameas=origin");
  // The swarm remote is B's only way to A now.
  sh(b_path, "git remote remove origin");
  auto liar = swarm.node("liar", {"--test-fault", "claim-everything", "--repo", fake.string()});
  BOOST_REQUIRE(wait_until([&] {
    auto out = annex_swarm({"discover", a.uuid, "--json", "--state-dir", mine->state_dir().string()});
    return out.exit_code == 0 && out.out.find(liar->node_id()) != std::string::npos;
  }));
  auto drop = [&] { return run_process({"sh", "-c", "cd '" + b_path.string() + "' && git annex drop big.bin 2>&1"}); };
  auto lied_to = drop();
  BOOST_TEST(lied_to.exit_code != 0, lied_to.out);
  BOOST_TEST(fs::exists(b_path / "big.bin"));
  std::ifstream in(b_path / "big.bin", std::ios::binary);
  BOOST_TEST((std::string(std::istreambuf_iterator<char>(in), {}) == content));
  BOOST_TEST(mine->log().find("failed a proof of possession") != std::string::npos);
  // The remote's answer: not known, with the reason (never "present").
  auto asked = run_process({"sh", "-c", "cd '" + b_path.string() + "' && git annex checkpresentkey " + key +
                                            " home-swarm 2>&1"});
  BOOST_TEST(asked.exit_code != 0);
  BOOST_TEST(asked.out.find("not shown by its holders") != std::string::npos, asked.out);

  // The real home server comes back: it shows it holds the bytes, and the drop goes ahead.
  auto home = swarm.node("home", {"--repo", a.path.string()});
  BOOST_REQUIRE(wait_until([&] {
    auto out = annex_swarm({"discover", a.uuid, "--json", "--state-dir", mine->state_dir().string()});
    return out.exit_code == 0 && out.out.find(home->node_id()) != std::string::npos;
  }));
  auto dropped = drop();
  BOOST_TEST(dropped.exit_code == 0, dropped.out + mine->log());
}

BOOST_AUTO_TEST_CASE(a_swarm_store_never_counts_another_repositorys_annex_copy) {
  Swarm swarm;
  auto a = make_annex_repo(swarm.dir.path() / "a", {{"doc.txt", "only in A's annex\n"}});
  auto key = a.key_of("doc.txt");
  // A's node serves A and keeps the swarm store too: the key is on that node, but only
  // in A's annex.
  auto node = swarm.node("node", {"--repo", a.path.string()});
  BOOST_REQUIRE(wait_until([&] {
    return annex_swarm({"whereis", key, "--state-dir", node->state_dir().string()}).exit_code == 0;
  }));
  swarm.initremote(a.path, "swarm", *node);
  auto check = [&] {
    return run_process({"sh", "-c", "cd '" + a.path.string() + "' && git annex checkpresentkey " + key + " swarm"}).exit_code;
  };
  BOOST_TEST(check() == 1);  // git-annex counts A itself; the swarm store must not count it again
  sh(a.path, "git annex copy -q --to swarm doc.txt");
  BOOST_TEST(check() == 0);
  // whereis names the node and how to reach it, once the store's key is announced.
  BOOST_REQUIRE(wait_until([&] {
    return sh(a.path, "git annex whereis doc.txt").find("swarm node " + node->node_id()) != std::string::npos;
  }));
  BOOST_TEST(sh(a.path, "git annex whereis doc.txt").find("127.0.0.1:") != std::string::npos);
  sh(a.path, "git annex drop -q --from swarm doc.txt");
  BOOST_TEST(check() == 1);
  BOOST_TEST(fs::exists(a.path / "doc.txt"));  // A's own copy untouched
  sh(a.path, "git annex fsck -q doc.txt");
}

BOOST_AUTO_TEST_CASE(the_token_and_the_state_dir_never_enter_the_git_annex_branch) {
  Swarm swarm;
  auto local = swarm.node("local");
  auto content = random_content(3u << 20, 11);
  auto repo = make_annex_repo(swarm.dir.path() / "repo", {{"f.bin", content}});
  // Given as swarm=TOKEN and statedir=DIR (as a user of an older version would): both
  // are taken out of the remote's config; the swarm's public id is kept instead.
  swarm.initremote(repo.path, "swarm", *local);
  sh(repo.path, "git annex copy -q --to swarm f.bin && git annex sync -q 2>&1");
  auto history = sh(repo.path, "git log -p git-annex");
  auto id = SwarmToken::parse(swarm.token).value().public_id();
  BOOST_TEST(history.find(swarm.token) == std::string::npos);
  BOOST_TEST(history.find(swarm.token.substr(7, 20)) == std::string::npos);  // nor a piece of it
  BOOST_TEST(history.find(local->state_dir().string()) == std::string::npos);
  BOOST_TEST(history.find("swarmid=" + id) != std::string::npos);
  BOOST_TEST(sh(repo.path, "git config swarm.statedir") == local->state_dir().string() + "\n");

  // Another clone whose node has the token only in its 0600 config file.
  sh(swarm.dir.path(), "git clone -q repo clone && cd clone && git annex init -q clone");
  auto config = swarm.dir.path() / "clone-node.conf";
  {
    std::ofstream out(config);
    out << "swarm = " << swarm.token << "\nbootstrap = " << swarm.bootstrap << "\n";
  }
  fs::permissions(config, fs::perms::owner_read | fs::perms::owner_write);
  auto other = start_loopback_daemon(swarm.dir.path(), "clone-node", {"--config", config.string()});
  auto clone = swarm.dir.path() / "clone";
  sh(clone, "git annex enableremote swarm statedir=" + other->state_dir().string() + " 2>&1");
  BOOST_REQUIRE(wait_until([&] {
    return run_process({"sh", "-c", "cd '" + clone.string() + "' && git annex get -q --from swarm f.bin"}).exit_code == 0;
  }));
  std::ifstream in(clone / "f.bin", std::ios::binary);
  BOOST_TEST((std::string(std::istreambuf_iterator<char>(in), {}) == content));
  sh(clone, "git annex sync -q 2>&1");
  history = sh(clone, "git log -p git-annex");
  BOOST_TEST(history.find(other->state_dir().string()) == std::string::npos);
  BOOST_TEST(history.find(swarm.token) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(every_reply_follows_the_protocol_even_on_bad_input) {
  TempDir dir;
  auto token = SwarmToken::generate().str();
  // Answers to the remote's own questions (GETCONFIG swarmid, swarm, statedir,
  // allow-unverified, pinned, shares, GETUUID) follow the first request that needs them.
  std::string input = "EXTENSIONS INFO GETGITREMOTENAME\n"
                      "CHECKPRESENT ../../etc/passwd\n"
                      "VALUE\nVALUE " + token + "\nVALUE " + (dir.path() / "none").string() + "\nVALUE\nVALUE\nVALUE\n"
                      "VALUE 11111111-2222-3333-4444-555555555555\n"
                      "TRANSFER STORE ../../etc/passwd /etc/passwd\n"
                      "TRANSFER SIDEWAYS KEY file\n"
                      "TRANSFER\n"
                      "REMOVE SHA256E-s1--" + std::string(64, 'a') + "\n"
                      "PREPARE\n"
                      "GETAVAILABILITY\n"
                      "NOSUCHREQUEST with args\n"
                      "\n";
  std::ofstream(dir.path() / "in") << input;
  auto bin = fs::path(ANNEX_SWARM_BIN).parent_path() / "git-annex-remote-swarm";
  auto out = run_process({"sh", "-c", "'" + bin.string() + "' < '" + (dir.path() / "in").string() + "'"});
  BOOST_TEST(out.exit_code == 0, out.err);
  std::vector<std::string> lines;
  std::istringstream in(out.out);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::vector<std::string> expected_starts{
      "VERSION 1", "EXTENSIONS INFO", "GETCONFIG swarmid", "GETCONFIG swarm", "GETCONFIG statedir", "GETCONFIG allow-unverified",
      "GETCONFIG pinned", "GETCONFIG shares", "GETUUID", "CHECKPRESENT-UNKNOWN ../../etc/passwd not a valid annex key",
      "TRANSFER-FAILURE STORE ../../etc/passwd not a valid annex key", "UNSUPPORTED-REQUEST", "UNSUPPORTED-REQUEST",
      "REMOVE-FAILURE SHA256E-s1--", "PREPARE-FAILURE no annex-swarm daemon answers", "AVAILABILITY GLOBAL",
      "UNSUPPORTED-REQUEST", "UNSUPPORTED-REQUEST"};
  BOOST_REQUIRE_EQUAL(lines.size(), expected_starts.size());
  for (std::size_t i = 0; i < lines.size(); ++i)
    BOOST_TEST(lines[i].rfind(expected_starts[i], 0) == 0u, "line " << i << ": " << lines[i]);
}

BOOST_AUTO_TEST_SUITE_END()
