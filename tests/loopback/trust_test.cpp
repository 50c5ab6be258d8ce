// Trust, with real daemons on 127.0.0.1: a member cannot aim a node's dials anywhere but
// at itself, files are written safely (no symbolic link followed, no stale temp file in
// the way), only the store's write capability removes, and a store copy counts only when
// its holder answers an audit.
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "discovery/control_client.hpp"
#include "node/endpoint_book.hpp"
#include "protocol/crypto.hpp"
#include "protocol/ip_address.hpp"
#include "protocol/swarm_token.hpp"
#include "tests/support/test_support.hpp"
#include "transfer/peer_dialer.hpp"
#include "transfer/peer_link.hpp"

using namespace annexswarm;
using namespace annexswarm::test;
using nlohmann::json;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// A listener that counts the connections it accepts.
struct CountingListener {
  CountingListener(asio::io_context& io, const std::string& host) : acceptor(io, {asio::ip::make_address(host), 0}) {
    accept();
  }
  void accept() {
    acceptor.async_accept([this](std::error_code ec, tcp::socket) {
      if (ec) return;
      ++accepted;
      accept();
    });
  }
  std::uint16_t port() const { return acceptor.local_endpoint().port(); }
  tcp::acceptor acceptor;
  int accepted = 0;
};

// An authenticated member link to a daemon on 127.0.0.1, as a node of our own.
struct MemberLink {
  MemberLink(asio::io_context& io, const DaemonProcess& daemon, const SwarmToken& swarm) : io(io) {
    DirectDialer dialer(io, me.credentials);
    auto id = NodeId::from_hex(daemon.node_id());
    BOOST_REQUIRE(id);
    dialer.dial({*id, {tcp::endpoint(asio::ip::make_address("127.0.0.1"), daemon.port())}, {}, false}, swarm,
                [&](Result<std::shared_ptr<PeerLink>> r) {
                  BOOST_REQUIRE_MESSAGE(r, r.error());
                  link = *r;
                });
    run_io_until(io, [&] { return link != nullptr; }, 30s);
  }
  ~MemberLink() {
    if (link) link->close();
  }
  peer::Frame ask(const peer::Frame& request) {
    std::optional<peer::Frame> reply;
    link->send(request);
    link->receive([&](Result<peer::Frame> f) {
      BOOST_REQUIRE_MESSAGE(f, f.error());
      reply = *f;
    });
    run_io_until(io, [&] { return reply.has_value(); }, 30s);
    return *reply;
  }
  asio::io_context& io;
  TestIdentity me;
  std::shared_ptr<PeerLink> link;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(dial_back)

BOOST_AUTO_TEST_CASE(a_member_cannot_aim_dial_backs_at_loopback_the_node_itself_or_a_private_network) {
  TempDir dir;
  auto swarm = SwarmToken::generate();
  auto node = start_loopback_daemon(dir.path(), "node", {"--bootstrap", "none", "--swarm", swarm.str()});
  asio::io_context io;
  CountingListener on_loopback(io, "127.0.0.1");
  // One of the machine's own addresses (the daemon's too: it listens on 127.0.0.1 only,
  // but the host's interfaces are its own).
  std::optional<CountingListener> on_own;
  for (const auto& a : interface_addresses())
    if (address_scope(a) == AddressScope::Private || address_scope(a) == AddressScope::Global) {
      on_own.emplace(io, a);
      break;
    }

  MemberLink member(io, *node, swarm);
  auto ask = [&](const std::string& host, std::uint16_t port) {
    static std::uint32_t id = 0;
    auto reply = member.ask(peer::DialBack{++id, host, port});
    auto* answer = std::get_if<peer::DialBackReply>(&reply);
    BOOST_REQUIRE_MESSAGE(answer, "the reply to DIAL_BACK " << host << " is " << peer::frame_name(reply));
    return *answer;
  };
  // Where the asker is seen (loopback here), loopback named outright, a private network
  // the asker is not seen on: each refused, with the one generic reason.
  std::vector<std::pair<std::string, std::uint16_t>> targets{
      {"", on_loopback.port()}, {"127.0.0.1", on_loopback.port()}, {"10.255.255.1", 4224}, {"169.254.1.1", 4224}};
  if (on_own) targets.emplace_back(on_own->acceptor.local_endpoint().address().to_string(), on_own->port());
  else BOOST_TEST_MESSAGE("no non-loopback interface address: the node's-own-address case is skipped");
  for (const auto& [host, port] : targets) {
    auto answer = ask(host, port);
    BOOST_TEST(!answer.ok, "DIAL_BACK " << host << ":" << port);
    BOOST_TEST(answer.reason == "could not reach you there");
  }
  io.poll();
  BOOST_TEST(on_loopback.accepted == 0);
  if (on_own) BOOST_TEST(on_own->accepted == 0);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(files_written_safely)

BOOST_AUTO_TEST_CASE(a_symbolic_link_at_dest_part_is_refused_and_its_target_untouched) {
  TempDir dir;
  auto swarm = SwarmToken::generate().str();
  auto first = start_loopback_daemon(dir.path(), "first", {"--bootstrap", "none", "--swarm", swarm});
  auto bootstrap = "127.0.0.1:" + std::to_string(first->port());
  auto repo = make_annex_repo(dir.path() / "repo", {{"f.bin", std::string(3 << 20, 'x')}});
  auto key = sh(repo.path, "git annex lookupkey f.bin");
  key.erase(key.find_last_not_of('\n') + 1);
  auto seeder = start_loopback_daemon(dir.path(), "seeder",
                                      {"--bootstrap", bootstrap, "--swarm", swarm, "--repo", repo.path.string()});
  auto down = start_loopback_daemon(dir.path(), "down", {"--bootstrap", bootstrap, "--swarm", swarm});
  BOOST_REQUIRE(wait_until([&] {
    return annex_swarm({"whereis", key, "--state-dir", down->state_dir().string()}).exit_code == 0;
  }, 120s));

  auto victim = dir.path() / "precious.txt";
  { std::ofstream(victim) << "keep me"; }
  auto to = dir.path() / "out.bin";
  std::filesystem::create_symlink(victim, to.string() + ".part");
  auto out = annex_swarm({"get", key, "--to", to.string(), "--state-dir", down->state_dir().string()});
  BOOST_TEST(out.exit_code == 2);
  BOOST_TEST(out.err.find("symbolic link") != std::string::npos, out.err);
  BOOST_TEST(read_file(victim) == "keep me");
  BOOST_TEST(!std::filesystem::exists(to));

  // The same for the chunk list beside it.
  std::filesystem::remove(to.string() + ".part");
  std::filesystem::create_symlink(victim, to.string() + ".part.chunks");
  out = annex_swarm({"get", key, "--to", to.string(), "--state-dir", down->state_dir().string()});
  BOOST_TEST(out.exit_code == 2);
  BOOST_TEST(read_file(victim) == "keep me");

  // Gone, the download works.
  std::filesystem::remove(to.string() + ".part.chunks");
  out = annex_swarm({"get", key, "--to", to.string(), "--state-dir", down->state_dir().string()});
  BOOST_REQUIRE_MESSAGE(out.exit_code == 0, out.err);
  BOOST_TEST(std::filesystem::file_size(to) == 3u << 20);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {
const std::string kStore = "0c3f9e2a-1111-2222-3333-444455556666";

// A key put into the daemon's swarm store `kStore` as git-annex-remote-swarm does (STORE).
std::string store_one(const TempDir& dir, const DaemonProcess& daemon, const std::string& content = "kept by the swarm\n") {
  auto key = "SHA256E-s" + std::to_string(content.size()) + "--" + to_hex(crypto::sha256(as_bytes(content)));
  std::ofstream(dir.path() / "kept.txt", std::ios::binary) << content;
  auto client = ControlClient::connect(daemon.state_dir());
  BOOST_REQUIRE_MESSAGE(client, client.error());
  auto reply = client->request({{"op", "store"}, {"key", key}, {"file", (dir.path() / "kept.txt").string()},
                                {"store", kStore}});
  std::string why = reply ? reply->dump() : reply.error();
  BOOST_REQUIRE_MESSAGE(reply && reply->value("ok", false), why);
  return key;
}

std::uint64_t held(MemberLink& m, const std::string& key) {
  auto reply = m.ask(peer::Have{1, {key}, kStore});
  return std::get<peer::HaveReply>(reply).sizes.at(0);
}
}  // namespace

BOOST_AUTO_TEST_SUITE(scoped_removal)

BOOST_AUTO_TEST_CASE(only_the_stores_write_capability_removes_and_the_trash_gives_it_back) {
  TempDir dir;
  auto swarm = SwarmToken::generate();
  auto holder = start_loopback_daemon(dir.path(), "holder", {"--bootstrap", "none", "--swarm", swarm.str()});
  auto key = store_one(dir, *holder);
  asio::io_context io;
  MemberLink member(io, *holder, swarm);
  BOOST_REQUIRE(held(member, key) > 0u);

  auto refused = member.ask(peer::Remove{2, key, kStore, Bytes(32, 0)});
  auto* error = std::get_if<peer::ErrorFrame>(&refused);
  BOOST_REQUIRE(error);
  BOOST_TEST((error->code == peer::ErrorCode::NotAllowed));
  BOOST_TEST(held(member, key) > 0u);
  BOOST_TEST(holder->log().find("refused to remove " + key) != std::string::npos);

  auto removed = member.ask(peer::Remove{3, key, kStore, swarm.store_capability(kStore)});
  BOOST_REQUIRE(std::holds_alternative<peer::HaveReply>(removed));
  BOOST_TEST(held(member, key) == 0u);
  // Logged with who asked; kept in the trash.
  BOOST_TEST(holder->log().find("at the request of node " + member.me.id.hex()) != std::string::npos);
  auto trash = annex_swarm({"trash", "--json", "--state-dir", holder->state_dir().string()});
  BOOST_REQUIRE_MESSAGE(trash.exit_code == 0, trash.err);
  BOOST_TEST(trash.out.find(key) != std::string::npos);
  auto restored = annex_swarm({"restore", key, "--store", kStore, "--state-dir", holder->state_dir().string()});
  BOOST_REQUIRE_MESSAGE(restored.exit_code == 0, restored.err);
  BOOST_TEST(held(member, key) > 0u);
  BOOST_TEST(annex_swarm({"trash", "--state-dir", holder->state_dir().string()}).exit_code == 1);  // empty
}

BOOST_AUTO_TEST_CASE(nothing_is_removed_on_request_in_the_public_swarm) {
  TempDir dir;
  auto swarm = SwarmToken::public_swarm();
  auto holder = start_loopback_daemon(dir.path(), "holder", {"--bootstrap", "none", "--swarm", "public"});
  auto key = store_one(dir, *holder);
  asio::io_context io;
  MemberLink member(io, *holder, swarm);
  auto refused = member.ask(peer::Remove{2, key, kStore, swarm.store_capability(kStore)});
  auto* error = std::get_if<peer::ErrorFrame>(&refused);
  BOOST_REQUIRE(error);
  BOOST_TEST((error->code == peer::ErrorCode::NotAllowed));
  BOOST_TEST(held(member, key) > 0u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(store_audits)

// The node that stored a key keeps audits of it. With no copy of its own left, another
// holder of the store counts only when it answers one; a member that announces the key
// and answers anything is not counted, and without audits nobody's word is enough.
BOOST_AUTO_TEST_CASE(without_a_copy_a_holder_counts_only_when_it_answers_an_audit_kept_at_store_time) {
  TempDir dir;
  auto swarm = SwarmToken::generate();
  auto storer = start_loopback_daemon(dir.path(), "storer", {"--bootstrap", "none", "--swarm", swarm.str()});
  auto bootstrap = "127.0.0.1:" + std::to_string(storer->port());
  auto keeper = start_loopback_daemon(dir.path(), "keeper", {"--bootstrap", bootstrap, "--swarm", swarm.str()});
  auto liar = start_loopback_daemon(dir.path(), "liar",
                                    {"--bootstrap", bootstrap, "--swarm", swarm.str(), "--test-fault", "claim-everything"});
  auto other = start_loopback_daemon(dir.path(), "other", {"--bootstrap", bootstrap, "--swarm", swarm.str()});
  std::string content(1u << 20, '\0');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>((i * 2654435761u) >> 13);
  auto key = store_one(dir, *storer, content);
  BOOST_REQUIRE(store_one(dir, *keeper, content) == key);
  BOOST_REQUIRE(store_one(dir, *liar, content) == key);
  auto parsed = AnnexKey::parse(key).value();
  auto audits = storer->state_dir() / "audits" / kStore / key;
  BOOST_REQUIRE(std::filesystem::exists(audits));
  // The storer loses its own copy (a disk replaced, say).
  auto own = storer->state_dir() / "stores" / kStore / "annex" / "objects" / parsed.hash_dir_lower() / key / key;
  BOOST_REQUIRE(std::filesystem::remove(own));
  // Both other holders are announced where the storer and the other node look.
  auto sees_both = [&](const DaemonProcess& at) {
    auto out = annex_swarm({"whereis", key, "--json", "--state-dir", at.state_dir().string()});
    if (out.exit_code != 0) return false;
    std::set<std::string> nodes;
    auto reply = json::parse(out.out);
    for (const auto& p : reply["providers"]) nodes.insert(p.value("node", ""));
    return nodes.count(keeper->node_id()) && nodes.count(liar->node_id());
  };
  BOOST_REQUIRE(wait_until([&] { return sees_both(*storer) && sees_both(*other); }));

  auto present = [&](const DaemonProcess& at) {
    auto client = ControlClient::connect(at.state_dir());
    BOOST_REQUIRE_MESSAGE(client, client.error());
    auto reply = client->request({{"op", "present"}, {"key", key}, {"repo", kStore}});
    BOOST_REQUIRE_MESSAGE(reply, reply.error());
    return *reply;
  };
  auto at_storer = present(*storer);
  BOOST_TEST_MESSAGE("storer: " << at_storer.dump());
  BOOST_TEST(at_storer.value("present", false));
  BOOST_TEST((at_storer["confirmed_by"] == json::array({keeper->node_id()})));
  BOOST_TEST(at_storer["unproven"].contains(liar->node_id()));
  BOOST_TEST(storer->log().find("node " + liar->node_id() + " says it holds " + key + " but failed a proof") !=
             std::string::npos);
  // Each audit is used once (one per holder asked: the keeper's, the liar's).
  auto used = [&] {
    std::ifstream in(audits);
    std::string version, size, seed;
    std::uint32_t next = 0;
    in >> version >> size >> seed >> next;
    return next;
  };
  BOOST_TEST(used() == 2u);
  // A node that did not store it has no audits: the holders' word makes it unknown.
  auto at_other = present(*other);
  BOOST_TEST_MESSAGE("other: " << at_other.dump());
  BOOST_TEST(!at_other.value("present", false));
  BOOST_TEST(at_other.value("unknown", false));
}

BOOST_AUTO_TEST_SUITE_END()

