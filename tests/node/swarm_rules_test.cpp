// Swarm rules: the document's parser, and the book that adopts a newer version signed by an
// admin it trusts and refuses the rest, with real OpenPGP keys made by Debian's gpg.
#include <boost/test/unit_test.hpp>

#include <fstream>

#include "node/swarm_rules.hpp"
#include "tests/support/gpg_home.hpp"

using namespace annexswarm;
using namespace annexswarm::test;

namespace {

const std::string kNodeA(40, 'a'), kNodeB(40, 'b');
const std::string kStore = "6f1a2b3c-0000-4000-8000-00000000abcd";
constexpr std::int64_t kNow = 1795800000;  // 2026-11-27

std::string document(std::uint64_t version, const std::vector<std::string>& admins,
                     const std::string& expires = "2030-01-01") {
  std::string text = "# the swarm's rules\nversion = " + std::to_string(version) + "\nexpires = " + expires + "\n";
  for (const auto& a : admins) text += "admin = " + a + "\n";
  text += "group.home = " + kNodeA + " " + kNodeB + "\n";
  text += "store." + kStore + ".copies = 3\nstore." + kStore + ".keep-on = home\nstore." + kStore + ".grace = 10m\n";
  return text;
}

// Two admins and a stranger, each with a key of their own.
struct Signers {
  GpgHome gpg;
  std::string alice = gpg.new_key("Alice <alice@example.org>");
  std::string bob = gpg.new_key("Bob <bob@example.org>");
  std::string mallory = gpg.new_key("Mallory <mallory@example.org>");
  std::string keys = gpg.public_key(alice) + gpg.public_key(bob) + gpg.public_key(mallory);
  Signers() {
    BOOST_REQUIRE_MESSAGE(alice.size() == 40 && bob.size() == 40 && mallory.size() == 40,
                          "gpg made no keys: " << gpg.gpg({"--list-keys"}).err);
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(swarm_rules)

BOOST_AUTO_TEST_CASE(the_documented_lines_parse) {
  auto r = parse_rules(document(7, {"0123 4567 89AB CDEF 0123  4567 89ab cdef 0123 4567"}));
  BOOST_REQUIRE_MESSAGE(r, r.error());
  BOOST_TEST(r->version == 7u);
  BOOST_TEST(r->expires.value() == 1893456000);  // 2030-01-01T00:00:00Z
  BOOST_TEST(r->admins == std::vector<std::string>{"0123456789ABCDEF0123456789ABCDEF01234567"});
  BOOST_TEST(r->groups.at("home").size() == 2u);
  const auto& store = r->stores.at(kStore);
  BOOST_TEST(store.copies.value() == 3u);
  BOOST_TEST(store.keep_on == std::vector<std::string>{"home"});
  BOOST_TEST(store.grace.value().count() == 600);
}

BOOST_AUTO_TEST_CASE(mistakes_are_errors_with_their_line_numbers) {
  const std::string admin = "admin = " + std::string(40, 'C') + "\n";
  auto unknown = parse_rules("version = 1\n" + admin + "colour = blue\n");
  BOOST_REQUIRE(!unknown);
  BOOST_TEST(unknown.error().find("line 3: unknown name 'colour'") != std::string::npos, unknown.error());
  auto twice = parse_rules("version = 1\nversion = 2\n" + admin);
  BOOST_REQUIRE(!twice);
  BOOST_TEST(twice.error().find("line 2: version is given twice") != std::string::npos, twice.error());
  auto no_group = parse_rules("version = 1\n" + admin + "store." + kStore + ".keep-on = offsite\n");
  BOOST_REQUIRE(!no_group);
  BOOST_TEST(no_group.error().find("line 3: keep-on names group 'offsite'") != std::string::npos, no_group.error());
  auto bad_day = parse_rules("version = 1\nexpires = 2027-02-30\n" + admin);
  BOOST_REQUIRE(!bad_day);
  BOOST_TEST(bad_day.error().find("line 2: expires") != std::string::npos, bad_day.error());
  auto bad_node = parse_rules("version = 1\n" + admin + "group.home = nothex\n");
  BOOST_REQUIRE(!bad_node);
  BOOST_TEST(bad_node.error().find("line 3: not a node id") != std::string::npos, bad_node.error());
  auto bad_store = parse_rules("version = 1\n" + admin + "store.nouuid.copies = 2\n");
  BOOST_REQUIRE(!bad_store);
  BOOST_TEST(bad_store.error().find("line 3:") != std::string::npos, bad_store.error());
  auto no_admin = parse_rules("version = 1\n");
  BOOST_REQUIRE(!no_admin);
  BOOST_TEST(no_admin.error().find("no admin line") != std::string::npos, no_admin.error());
  auto no_version = parse_rules(admin);
  BOOST_REQUIRE(!no_version);
  BOOST_TEST(no_version.error().find("no version line") != std::string::npos, no_version.error());
}

BOOST_AUTO_TEST_CASE(a_newer_version_signed_by_a_trusted_admin_is_adopted_and_everything_else_refused) {
  Signers s;
  TempDir state;
  RulesBook book(state.path(), {s.alice});
  BOOST_TEST(!book.load().value());
  // Version 1, signed by the config's admin, names Bob as the next admin.
  auto v1 = s.gpg.clearsign(s.alice, document(1, {s.bob}));
  auto adopted = book.offer(v1, s.keys, kNow);
  BOOST_REQUIRE_MESSAGE(adopted.adopted, adopted.why);
  BOOST_TEST(book.current()->rules.version == 1u);
  BOOST_TEST(book.current()->signer == s.alice);
  BOOST_TEST(!book.offer(v1, s.keys, kNow).adopted);  // already held: no refusal either
  BOOST_TEST(book.refusals().rollback == 0u);

  // Version 2 signed by a stranger, then by Alice (no longer an admin), then by Bob.
  auto by_mallory = book.offer(s.gpg.clearsign(s.mallory, document(2, {s.bob})), s.keys, kNow);
  BOOST_TEST(!by_mallory.adopted);
  BOOST_TEST((by_mallory.refused == RulesRefusal::NotAnAdmin), by_mallory.why);
  BOOST_TEST(!book.offer(s.gpg.clearsign(s.alice, document(2, {s.bob})), s.keys, kNow).adopted);
  BOOST_TEST(book.refusals().not_an_admin == 2u);
  auto v2 = book.offer(s.gpg.clearsign(s.bob, document(2, {s.bob})), s.keys, kNow);
  BOOST_REQUIRE_MESSAGE(v2.adopted, v2.why);
  BOOST_TEST(book.current()->rules.version == 2u);

  // Version 1 again (rollback), an expired version 3, an unsigned one, an altered one.
  auto again = book.offer(v1, s.keys, kNow);
  BOOST_TEST((again.refused == RulesRefusal::Rollback), again.why);
  auto v1_by_bob = book.offer(s.gpg.clearsign(s.bob, document(1, {s.bob})), s.keys, kNow);
  BOOST_TEST((v1_by_bob.refused == RulesRefusal::Rollback), v1_by_bob.why);
  auto expired = book.offer(s.gpg.clearsign(s.bob, document(3, {s.bob}, "2026-01-01")), s.keys, kNow);
  BOOST_TEST((expired.refused == RulesRefusal::Expired), expired.why);
  auto unsigned_text = book.offer(document(3, {s.bob}), s.keys, kNow);
  BOOST_TEST((unsigned_text.refused == RulesRefusal::Unsigned), unsigned_text.why);
  auto signed_v3 = s.gpg.clearsign(s.bob, document(3, {s.bob}));
  auto altered = signed_v3;
  auto at = altered.find("copies = 3");
  BOOST_REQUIRE(at != std::string::npos);
  altered.replace(at, 10, "copies = 1");
  auto tampered = book.offer(altered, s.keys, kNow);
  BOOST_TEST((tampered.refused == RulesRefusal::BadSignature), tampered.why);
  // Bob's key came with an earlier version: the node's keyring still has it.
  auto keyless = book.offer(signed_v3, "", kNow);
  BOOST_REQUIRE_MESSAGE(keyless.adopted, keyless.why);
  BOOST_TEST(book.current()->rules.version == 3u);
  BOOST_TEST(book.refusals().rollback == 2u);
  BOOST_TEST(book.refusals().expired == 1u);
  BOOST_TEST(book.refusals().unsigned_text == 1u);
  BOOST_TEST(book.refusals().bad_signature == 1u);
}

BOOST_AUTO_TEST_CASE(a_restarted_node_holds_the_version_it_adopted_and_refuses_older_ones) {
  Signers s;
  TempDir state;
  auto v1 = s.gpg.clearsign(s.alice, document(1, {s.bob}));
  auto v2 = s.gpg.clearsign(s.bob, document(2, {s.bob}));
  {
    RulesBook book(state.path(), {s.alice});
    BOOST_TEST(book.offer(v1, s.keys, kNow).adopted);
    BOOST_TEST(book.offer(v2, s.keys, kNow).adopted);
  }
  RulesBook again(state.path(), {s.alice});
  auto loaded = again.load();
  BOOST_REQUIRE_MESSAGE(loaded, loaded.error());
  BOOST_TEST(*loaded);
  BOOST_TEST(again.current()->rules.version == 2u);
  BOOST_TEST(again.current()->signer == s.bob);
  auto old = again.offer(v1, s.keys, kNow);
  BOOST_TEST(!old.adopted);
  BOOST_TEST(old.refused.has_value(), old.why);
}

BOOST_AUTO_TEST_CASE(the_version_a_document_claims_is_read_without_checking_it) {
  Signers s;
  BOOST_TEST(claimed_version(s.gpg.clearsign(s.alice, document(12, {s.bob}))) == 12u);
  BOOST_TEST(claimed_version(document(3, {s.bob})) == 3u);
  BOOST_TEST(claimed_version("no version here\n") == 0u);
  BOOST_TEST(claimed_version("version = x\n") == 0u);
}

BOOST_AUTO_TEST_CASE(a_document_naming_another_swarm_is_refused) {
  Signers s;
  TempDir state;
  const std::string ours(32, 'a'), theirs(32, 'b');
  RulesBook book(state.path(), {s.alice}, {ours});
  auto elsewhere = book.offer(s.gpg.clearsign(s.alice, "swarm = " + theirs + "\n" + document(1, {s.bob})), s.keys, kNow);
  BOOST_TEST((elsewhere.refused == RulesRefusal::Malformed), elsewhere.why);
  BOOST_TEST(elsewhere.why.find("for swarm") != std::string::npos, elsewhere.why);
  auto here = book.offer(s.gpg.clearsign(s.alice, "swarm = " + ours + "\n" + document(1, {s.bob})), s.keys, kNow);
  BOOST_TEST(here.adopted, here.why);
}

BOOST_AUTO_TEST_CASE(rules_kept_that_cannot_be_read_back_lock_the_node_instead_of_trusting_the_config_again) {
  Signers s;
  TempDir state;
  {
    RulesBook book(state.path(), {s.alice});
    BOOST_TEST(book.offer(s.gpg.clearsign(s.alice, document(1, {s.bob})), s.keys, kNow).adopted);
  }
  std::ofstream(state.path() / "rules" / "adopted.txt") << "version = garbage\n";
  RulesBook again(state.path(), {s.alice});
  BOOST_TEST(!again.load());
  // Even a newer version by the config's admin: refused until the directory is removed.
  auto v2 = again.offer(s.gpg.clearsign(s.alice, document(2, {s.alice})), s.keys, kNow);
  BOOST_TEST(!v2.adopted, v2.why);
}

BOOST_AUTO_TEST_CASE(a_key_nobody_sent_is_refused_as_not_an_admin) {
  Signers s;
  TempDir state;
  RulesBook book(state.path(), {s.alice});
  auto v1 = book.offer(s.gpg.clearsign(s.alice, document(1, {s.bob})), "", kNow);
  BOOST_TEST((v1.refused == RulesRefusal::NotAnAdmin), v1.why);
  BOOST_TEST(!book.current().has_value());
}

BOOST_AUTO_TEST_SUITE_END()
