// git over the swarm (issue 18) under Debian's real git-annex and openssh-server: a home
// node exposes its sshd; a laptop clones the repository over ssh:// with ProxyCommand
// `annex-swarm connect`, gets a file, and syncs a commit and a file back; fsck passes on
// both sides.
#include <boost/test/unit_test.hpp>

#include <fstream>

#include "protocol/swarm_token.hpp"
#include "tests/support/sshd.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::test;
namespace fs = std::filesystem;

namespace {
BOOST_TEST_GLOBAL_FIXTURE(AnnexEnvironment);
}  // namespace

BOOST_AUTO_TEST_SUITE(git_over_the_swarm)

BOOST_AUTO_TEST_CASE(git_annex_clones_and_syncs_over_ssh_through_the_tunnel) {
  if (!Sshd::available()) {
    BOOST_TEST_MESSAGE("skipped: needs root and Debian's openssh-server (scripts/setup test installs it)");
    return;
  }
  TempDir dir;
  Sshd sshd(dir.path() / "sshd");
  auto content = random_content(2u << 20, 41);
  auto home_repo = make_annex_repo(dir.path() / "home-repo", {{"photo.bin", content}});
  auto token = SwarmToken::generate().str();
  auto home = start_loopback_daemon(dir.path(), "home", {"--bootstrap", "none", "--swarm", token, "--expose.ssh",
                                                         "127.0.0.1:" + std::to_string(sshd.port())});
  auto laptop = start_loopback_daemon(dir.path(), "laptop", {"--bootstrap", "127.0.0.1:" + std::to_string(home->port()),
                                                             "--swarm", token, "--alias.home", home->node_id()});
  sshd.write_client_config(dir.path() / "bin", "home.swarm", "home", laptop->state_dir());
  auto in = [&](const fs::path& where, const std::string& command) {
    return run_process({"sh", "-c", "cd '" + where.string() + "' && PATH='" + (dir.path() / "bin").string() +
                                        "':\"$PATH\" timeout 120 " + command + " 2>&1"});
  };
  // The laptop's node may not know home's contact record yet: the first clone is retried.
  ProcessOutput clone;
  BOOST_REQUIRE_MESSAGE(wait_until([&] {
                          fs::remove_all(dir.path() / "laptop-repo");
                          clone = in(dir.path(), "git clone -q ssh://root@home.swarm" + home_repo.path.string() + " laptop-repo");
                          return clone.exit_code == 0;
                        }, std::chrono::seconds(60)),
                        clone.out + sshd.user_key().string());
  auto laptop_repo = dir.path() / "laptop-repo";
  auto init = in(laptop_repo, "git annex init laptop");
  BOOST_REQUIRE_MESSAGE(init.exit_code == 0, init.out);
  BOOST_REQUIRE_MESSAGE(init.out.find("annex-ignore") == std::string::npos, init.out);
  auto get = in(laptop_repo, "git annex get photo.bin");
  BOOST_REQUIRE_MESSAGE(get.exit_code == 0, get.out);
  std::ifstream got(laptop_repo / "photo.bin", std::ios::binary);
  BOOST_TEST((std::string((std::istreambuf_iterator<char>(got)), {}) == content));
  // A commit and a file the other way.
  std::ofstream(laptop_repo / "notes.bin") << random_content(300000, 42);
  BOOST_REQUIRE(in(laptop_repo, "git annex add -q notes.bin && git commit -qm notes").exit_code == 0);
  auto sync = in(laptop_repo, "git annex sync -q --content");
  BOOST_REQUIRE_MESSAGE(sync.exit_code == 0, sync.out);
  BOOST_REQUIRE(in(home_repo.path, "git merge -q --ff-only synced/master || git merge -q --ff-only synced/main").exit_code == 0);
  BOOST_TEST(in(home_repo.path, "git annex fsck -q notes.bin").exit_code == 0);
  BOOST_TEST(in(laptop_repo, "git annex fsck -q").exit_code == 0);
}

BOOST_AUTO_TEST_SUITE_END()
