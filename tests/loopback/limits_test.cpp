// Per-node limits in the stores' dotfile (<store-dir>/.annex-swarm, store-dir being
// <state-dir>/stores unless set), with real daemons: a storage limit refuses a STORE that
// would pass it, with a clear error; the stores, their dotfile and their trash follow
// store-dir; an upload-rate holds while the node serves; an edit takes effect without a
// restart.
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <fstream>

#include "discovery/control_client.hpp"
#include "protocol/bytes.hpp"
#include "protocol/crypto.hpp"
#include "protocol/swarm_token.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

void write_limits(const DaemonProcess& node, const std::string& text) {
  fs::create_directories(node.state_dir() / "stores");
  // Written aside and renamed: the daemon never reads half a file.
  auto tmp = node.state_dir() / "stores" / ".annex-swarm.tmp";
  std::ofstream(tmp) << text;
  fs::rename(tmp, node.state_dir() / "stores" / ".annex-swarm");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(node_limits)

BOOST_AUTO_TEST_CASE(a_storage_limit_in_the_dotfile_refuses_a_store_that_would_pass_it) {
  TempDir dir;
  auto node = start_loopback_daemon(dir.path(), "home", {"--bootstrap", "none", "--swarm", SwarmToken::generate().str()});
  write_limits(*node, "# this box's share of the swarm\nstorage = 10M\n");
  BOOST_REQUIRE(wait_until([&] { return node->status()["limits"]["storage"] == 10000000; }, std::chrono::seconds(30)));
  auto content = random_content(32u << 20, 5);
  auto file = dir.path() / "big.bin";
  std::ofstream(file) << content;
  auto key = "SHA256E-s" + std::to_string(content.size()) + "--" + to_hex(crypto::sha256(as_bytes(content))) + ".bin";
  const std::string store = "6f1a2b3c-0000-4000-8000-00000000abcd";
  auto client = ControlClient::connect(node->state_dir());
  BOOST_REQUIRE(client);
  auto reply = client->request({{"op", "store"}, {"key", key}, {"store", store}, {"file", file.string()}});
  BOOST_REQUIRE(reply);
  BOOST_TEST(!reply->value("ok", true));
  auto error = reply->value("error", std::string());
  BOOST_TEST(error.find("storage limit is 10000000 bytes") != std::string::npos, error);
  BOOST_TEST(error.find(".annex-swarm") != std::string::npos, error);
  // Nothing of it was kept; a small object still fits.
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(node->state_dir() / "stores", ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    BOOST_TEST(it->path().filename() != key);
  auto small = std::string(1000, 's');
  auto small_file = dir.path() / "small.bin";
  std::ofstream(small_file) << small;
  auto small_key = "SHA256E-s1000--" + to_hex(crypto::sha256(as_bytes(small))) + ".bin";
  auto ok = client->request({{"op", "store"}, {"key", small_key}, {"store", store}, {"file", small_file.string()}});
  BOOST_REQUIRE(ok);
  BOOST_TEST(ok->value("ok", false), ok->dump());
  // A mistake in the file is reported in status, and the limits before it stay.
  write_limits(*node, "storage = lots\n");
  BOOST_REQUIRE(wait_until([&] { return node->status()["limits"].contains("problem"); }, std::chrono::seconds(30)));
  BOOST_TEST(node->status()["limits"]["problem"].get<std::string>().find(":1: storage") != std::string::npos);
  BOOST_TEST(node->status()["limits"]["storage"] == 10000000);
}

BOOST_AUTO_TEST_CASE(the_stores_their_dotfile_and_their_trash_live_in_the_store_dir) {
  TempDir dir;
  auto disk = dir.path() / "big-disk";  // say, another file system mounted for the stores
  fs::create_directories(disk);
  std::ofstream(disk / ".annex-swarm") << "storage = 10M\n";
  auto node = start_loopback_daemon(dir.path(), "home", {"--bootstrap", "none", "--swarm", SwarmToken::generate().str(),
                                                         "--store-dir", disk.string()});
  BOOST_REQUIRE(wait_until([&] { return node->status()["limits"]["storage"] == 10000000; }, std::chrono::seconds(30)));
  BOOST_TEST(node->status()["limits"]["file"] == (disk / ".annex-swarm").string());
  auto small = std::string(1000, 'd');
  auto file = dir.path() / "small.bin";
  std::ofstream(file) << small;
  auto key = "SHA256E-s1000--" + to_hex(crypto::sha256(as_bytes(small))) + ".bin";
  const std::string store = "6f1a2b3c-0000-4000-8000-00000000abce";
  auto client = ControlClient::connect(node->state_dir());
  BOOST_REQUIRE(client);
  auto stored = client->request({{"op", "store"}, {"key", key}, {"store", store}, {"file", file.string()}});
  BOOST_REQUIRE(stored);
  BOOST_TEST(stored->value("ok", false), stored->dump());
  auto found_under = [&](const fs::path& root) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      if (it->path().filename() == key && it->is_regular_file()) return true;
    return false;
  };
  BOOST_TEST(found_under(disk / store / "annex" / "objects"));
  BOOST_TEST(!found_under(node->state_dir() / "stores"));
  // Removed, it goes to the trash on the same disk, and comes back from there.
  auto removed = client->request({{"op", "remove"}, {"key", key}, {"store", store}});
  BOOST_REQUIRE(removed);
  BOOST_TEST(removed->value("ok", false), removed->dump());
  BOOST_TEST(fs::exists(disk / ".trash" / store / key));
  BOOST_TEST(!found_under(disk / store));
  auto restored = client->request({{"op", "restore"}, {"key", key}, {"store", store}});
  BOOST_REQUIRE(restored);
  BOOST_TEST(restored->value("ok", false), restored->dump());
  BOOST_TEST(found_under(disk / store / "annex" / "objects"));
  // A restart finds the store there again.
  node->stop();
  BOOST_TEST(node->wait_exit() == 0);
  node = start_loopback_daemon(dir.path(), "home", {"--bootstrap", "none", "--swarm", SwarmToken::generate().str(),
                                                    "--store-dir", disk.string()});
  auto again = ControlClient::connect(node->state_dir());
  BOOST_REQUIRE(again);
  auto present = again->request({{"op", "present"}, {"key", key}, {"repo", store}});
  BOOST_REQUIRE(present);
  BOOST_TEST(present->value("present", false), present->dump());
}

BOOST_AUTO_TEST_CASE(an_upload_rate_in_the_dotfile_holds_and_an_edit_applies_without_a_restart) {
  TempDir dir;
  auto token = SwarmToken::generate().str();
  auto content = random_content(24u << 20, 6);
  auto repo = make_annex_repo(dir.path() / "repo", {{"video.bin", content}});
  auto key = repo.key_of("video.bin");
  auto first = start_loopback_daemon(dir.path(), "first", {"--bootstrap", "none", "--swarm", token});
  auto bootstrap = "127.0.0.1:" + std::to_string(first->port());
  auto seeder = start_loopback_daemon(dir.path(), "seeder", {"--bootstrap", bootstrap, "--swarm", token, "--repo", repo.path.string()});
  auto laptop = start_loopback_daemon(dir.path(), "laptop", {"--bootstrap", bootstrap, "--swarm", token});
  write_limits(*seeder, "upload-rate = 2M\n");
  BOOST_REQUIRE(wait_until([&] { return seeder->status()["limits"]["upload_rate"] == 2e6; }, std::chrono::seconds(30)));
  BOOST_REQUIRE(wait_until(
      [&] { return annex_swarm({"whereis", key, "--state-dir", laptop->state_dir().string()}).exit_code == 0; },
      std::chrono::seconds(60)));
  auto timed_get = [&](const std::string& to) {
    auto started = std::chrono::steady_clock::now();
    auto got = annex_swarm({"get", key, "--to", (dir.path() / to).string(), "--state-dir", laptop->state_dir().string()});
    BOOST_REQUIRE_MESSAGE(got.exit_code == 0, got.out + got.err);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  // 24 MiB at 2 MB/s: about 12.6 s of serving. Only the upper side is checked: a slow
  // machine makes it slower, never faster.
  auto seconds = timed_get("one.bin");
  auto rate = static_cast<double>(content.size()) / seconds;
  BOOST_TEST_MESSAGE("upload-rate 2M: served at " << rate / 1e6 << " MB/s over " << seconds << " s");
  BOOST_TEST(rate <= 2e6 * 1.10, rate / 1e6 << " MB/s over " << seconds << " s");
  // Edited while running: no restart, no SIGHUP.
  write_limits(*seeder, "upload-rate = 8M\n");
  BOOST_REQUIRE(wait_until([&] { return seeder->status()["limits"]["upload_rate"] == 8e6; }, std::chrono::seconds(30)));
  seconds = timed_get("two.bin");
  rate = static_cast<double>(content.size()) / seconds;
  BOOST_TEST_MESSAGE("upload-rate 8M: served at " << rate / 1e6 << " MB/s over " << seconds << " s");
  BOOST_TEST(rate <= 8e6 * 1.10, rate / 1e6 << " MB/s");
}

BOOST_AUTO_TEST_SUITE_END()
