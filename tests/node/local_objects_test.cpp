// Local objects: swarm stores made on demand, never over a repository, and where keys are.
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "node/audit_book.hpp"
#include "node/local_objects.hpp"
#include "node/swarm_store.hpp"
#include "protocol/crypto.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;

namespace {
const std::string kStore = "11111111-2222-3333-4444-555555555555";
const std::string kOther = "99999999-2222-3333-4444-555555555555";

// Puts `content` into store `index` as a STORE does; its key.
AnnexKey store_content(LocalObjects& objects, std::size_t index, const std::filesystem::path& dir,
                       const std::string& content) {
  auto key = AnnexKey::parse("SHA256E-s" + std::to_string(content.size()) + "--" +
                             to_hex(crypto::sha256(as_bytes(content)))).value();
  std::ofstream(dir / "f", std::ios::binary) << content;
  BOOST_REQUIRE(import_into_store(objects.at(index), key, dir / "f", nullptr));
  return key;
}
}

BOOST_AUTO_TEST_SUITE(local_objects)

BOOST_AUTO_TEST_CASE(a_store_is_made_once_and_found_again_after_a_restart) {
  test::TempDir dir;
  LocalObjects objects(dir.path());
  BOOST_REQUIRE(objects.open({}));
  std::vector<std::size_t> added;
  objects.on_added([&](std::size_t i) { added.push_back(i); });
  auto first = objects.store(kStore);
  BOOST_REQUIRE(first);
  BOOST_TEST(objects.store(kStore).value() == *first);
  BOOST_TEST(added.size() == 1u);
  auto key = store_content(objects, *first, dir.path(), "bytes\n");
  LocalObjects again(dir.path());
  BOOST_REQUIRE(again.open({}));
  BOOST_REQUIRE(again.index_of(kStore));
  BOOST_TEST(again.locate(key, kStore).has_value());
  BOOST_TEST(again.locate(key, "").has_value());
  BOOST_TEST(!again.locate(key, kOther).has_value());
}

BOOST_AUTO_TEST_CASE(a_read_only_temp_file_left_by_a_killed_store_does_not_block_the_next_store) {
  test::TempDir dir;
  std::string content = "bytes\n";
  auto key = AnnexKey::parse("SHA256E-s6--" + to_hex(crypto::sha256(as_bytes(content)))).value();
  std::ofstream(dir.path() / "f") << content;
  auto store = swarm_store(dir.path() / "stores", kStore);
  auto object = store.objects_dir / key.hash_dir_lower() / key.str() / key.str();
  std::filesystem::create_directories(object.parent_path());
  auto tmp = object.string() + ".tmp";
  std::ofstream(tmp) << "half of it";
  ::chmod(tmp.c_str(), 0444);
  // As the container's unprivileged user: root would ignore the mode bits.
  bool as_root = ::geteuid() == 0;
  if (as_root) {
    for (auto& p : std::filesystem::recursive_directory_iterator(dir.path()))
      BOOST_REQUIRE(::lchown(p.path().c_str(), 65534, 65534) == 0);
    BOOST_REQUIRE(::chown(dir.path().c_str(), 65534, 65534) == 0);
  } else {
    BOOST_TEST_MESSAGE("not root: the store runs as this user");
  }
  pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    if (as_root && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
    auto r = import_into_store(store, key, dir.path() / "f", nullptr);
    ::_exit(r ? 0 : 1);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 0);
  struct stat st {};
  BOOST_REQUIRE(::stat(object.c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0444u);  // read-only once complete, like git-annex's objects
  BOOST_TEST(!std::filesystem::exists(tmp));
  std::ifstream in(object);
  std::string got((std::istreambuf_iterator<char>(in)), {});
  BOOST_TEST(got == content);
}

BOOST_AUTO_TEST_CASE(an_object_that_resolves_outside_the_annex_is_not_served) {
  test::TempDir dir;
  LocalObjects objects(dir.path());
  BOOST_REQUIRE(objects.open({}));
  auto index = objects.store(kStore).value();
  std::string content = "secret\n";
  std::ofstream(dir.path() / "outside") << content;
  auto key = AnnexKey::parse("SHA256E-s7--" + to_hex(crypto::sha256(as_bytes(content)))).value();
  auto object = objects.at(index).objects_dir / key.hash_dir_lower() / key.str() / key.str();
  std::filesystem::create_directories(object.parent_path());
  std::filesystem::create_symlink(dir.path() / "outside", object);
  BOOST_TEST(!objects.locate(key, kStore).has_value());
  // A link that stays inside the annex is still an object.
  std::filesystem::remove(object);
  std::filesystem::copy_file(dir.path() / "outside", object.string() + ".real");
  std::filesystem::create_symlink(object.filename().string() + ".real", object);
  BOOST_TEST(objects.locate(key, kStore).has_value());
}

BOOST_AUTO_TEST_CASE(a_link_anywhere_below_the_objects_folder_is_followed_only_inside_the_annex) {
  test::TempDir dir;
  std::string content = "secret\n";
  auto key = AnnexKey::parse("SHA256E-s7--" + to_hex(crypto::sha256(as_bytes(content)))).value();
  {
    LocalObjects first(dir.path());
    BOOST_REQUIRE(first.open({}));
    first.store(kStore).value();
  }
  // Taken up again at start, with its objects folder there: lookups use the folder as
  // resolved then, and check only the parts below it.
  LocalObjects objects(dir.path());
  std::filesystem::create_directories(swarm_store(dir.path() / "stores", kStore).objects_dir);
  BOOST_REQUIRE(objects.open({}));
  auto index = objects.index_of(kStore).value();
  const auto& objects_dir = objects.at(index).objects_dir;
  auto hash_dir = objects_dir / key.hash_dir_lower();
  auto object = hash_dir / key.str() / key.str();
  std::filesystem::create_directories(object.parent_path());
  std::ofstream(object) << content;
  auto found = objects.locate(key, kStore);
  BOOST_REQUIRE(found.has_value());
  BOOST_TEST(*found == std::filesystem::canonical(object));
  // The first hash folder replaced by a link to a tree outside the annex.
  auto outside = dir.path() / "outside";
  std::filesystem::create_directories(outside);
  std::filesystem::rename(hash_dir.parent_path(), outside / "moved");
  std::filesystem::create_symlink(outside / "moved", hash_dir.parent_path());
  BOOST_REQUIRE(std::filesystem::is_regular_file(object));  // reachable through the link
  BOOST_TEST(!objects.locate(key, kStore).has_value());
}

BOOST_AUTO_TEST_CASE(a_removed_object_waits_in_the_trash_until_restored_or_purged) {
  test::TempDir dir;
  LocalObjects objects(dir.path());
  BOOST_REQUIRE(objects.open({}));
  auto index = objects.store(kStore).value();
  std::vector<bool> changes;
  objects.on_changed([&](std::size_t, const AnnexKey&, bool present) { changes.push_back(present); });
  std::string content = "bytes\n";
  auto key = store_content(objects, index, dir.path(), content);
  BOOST_REQUIRE(objects.remove_from_store(key, kStore).value());
  BOOST_TEST(!objects.locate(key, kStore).has_value());
  auto trashed = list_trash(objects.trash_dir());
  BOOST_REQUIRE(trashed.size() == 1u);
  BOOST_TEST(trashed[0].key == key.str());
  BOOST_TEST(trashed[0].store == kStore);
  BOOST_TEST(trashed[0].bytes == content.size());
  // Within the grace period: back, and served again.
  BOOST_TEST(purge_trash(objects.trash_dir(), trashed[0].removed) == 0u);
  BOOST_REQUIRE(objects.restore(key, kStore));
  BOOST_TEST(objects.locate(key, kStore).has_value());
  BOOST_TEST(list_trash(objects.trash_dir()).empty());
  BOOST_TEST(!objects.restore(key, kStore));  // not in the trash any more
  BOOST_TEST((changes == std::vector<bool>{false, true}));
  // After it: gone for good.
  BOOST_REQUIRE(objects.remove_from_store(key, kStore).value());
  auto after = list_trash(objects.trash_dir())[0].removed + std::chrono::seconds(1);
  BOOST_TEST(purge_trash(objects.trash_dir(), after) == 1u);
  BOOST_TEST(list_trash(objects.trash_dir()).empty());
  BOOST_TEST(!objects.restore(key, kStore));
}

BOOST_AUTO_TEST_CASE(when_space_runs_out_the_trash_gives_way_oldest_first) {
  test::TempDir dir;
  LocalObjects objects(dir.path());
  BOOST_REQUIRE(objects.open({}));
  auto index = objects.store(kStore).value();
  std::vector<AnnexKey> keys;
  for (std::string content : {"first\n", "second", "third\n"}) {
    auto key = store_content(objects, index, dir.path(), content);
    BOOST_REQUIRE(objects.remove_from_store(key, kStore).value());
    // Trashed one after the other (the file times order them).
    std::filesystem::last_write_time(objects.trash_dir() / kStore / key.str(),
                                     std::filesystem::file_time_type::clock::now() - std::chrono::hours(10 - keys.size()));
    keys.push_back(key);
  }
  // 100 bytes free, and each object purged frees its 6 bytes (a fake of the file system's count).
  std::uint64_t free_bytes = 100;
  auto available = [&] { return free_bytes + 6 * (3 - list_trash(objects.trash_dir()).size()); };
  BOOST_TEST(purge_trash_for_space(objects.trash_dir(), 80, available) == 0u);  // room enough: all stay
  BOOST_TEST(purge_trash_for_space(objects.trash_dir(), 110, available) == 2u);
  auto left = list_trash(objects.trash_dir());
  BOOST_REQUIRE(left.size() == 1u);
  BOOST_TEST(left[0].key == keys[2].str());  // the newest stays
  // Emptying the trash would not make room: it is kept (the store fails either way).
  BOOST_TEST(purge_trash_for_space(objects.trash_dir(), 1000, available) == 0u);
  BOOST_TEST(purge_trash_for_space(objects.trash_dir(), 118, available) == 1u);
}

BOOST_AUTO_TEST_CASE(audits_kept_at_store_time_are_answered_only_from_the_same_bytes_and_used_once) {
  test::TempDir dir;
  std::string content(100000, 'a');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>((i * 7919) >> 3);
  auto key = AnnexKey::parse("SHA256E-s100000--" + to_hex(crypto::sha256(as_bytes(content)))).value();
  std::ofstream(dir.path() / "object", std::ios::binary) << content;
  auto altered = content;  // one bit in every 2000 bytes: whatever 4 KiB a range reads
  for (std::size_t i = 0; i < altered.size(); i += 2000) altered[i] ^= 1;
  std::ofstream(dir.path() / "altered", std::ios::binary) << altered;

  AuditBook audits(dir.path() / "audits");
  BOOST_TEST(!audits.take(kStore, key));  // nothing stored: nothing to audit with
  BOOST_REQUIRE(audits.record(kStore, key, dir.path() / "object"));
  struct stat st {};
  BOOST_REQUIRE(::stat((dir.path() / "audits" / kStore / key.str()).c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0600u);  // kept to itself
  BOOST_TEST(audits.remaining(kStore, key) == AuditBook::kAuditsPerKey);
  std::set<std::string> nonces;
  std::size_t caught = 0;
  for (std::uint32_t i = 0; i < AuditBook::kAuditsPerKey; ++i) {
    auto c = audits.take(kStore, key);
    BOOST_REQUIRE(c);
    nonces.insert(to_hex(c->nonce));
    BOOST_TEST(answer_challenge(key.str(), dir.path() / "object", *c).value() == c->mac);
    caught += answer_challenge(key.str(), dir.path() / "altered", *c).value() != c->mac;
  }
  BOOST_TEST(nonces.size() == AuditBook::kAuditsPerKey);  // each one different
  BOOST_TEST(caught == AuditBook::kAuditsPerKey);
  BOOST_TEST(!audits.take(kStore, key));  // all used
  BOOST_REQUIRE(audits.record(kStore, key, dir.path() / "object"));
  audits.forget(kStore, key);
  BOOST_TEST(!audits.take(kStore, key));
}

BOOST_AUTO_TEST_CASE(removing_what_is_not_there_is_no_error_and_no_change) {
  test::TempDir dir;
  LocalObjects objects(dir.path());
  BOOST_REQUIRE(objects.open({}));
  objects.store(kStore).value();
  int changed = 0;
  objects.on_changed([&](std::size_t, const AnnexKey&, bool) { ++changed; });
  auto key = AnnexKey::parse("SHA256E-s1--" + std::string(64, 'a')).value();
  auto r = objects.remove_from_store(key, kStore);
  BOOST_REQUIRE(r);
  BOOST_TEST(!*r);
  BOOST_TEST(changed == 0);
  BOOST_TEST(!objects.remove_from_store(key, kOther));  // no such store here
}

BOOST_AUTO_TEST_CASE(repositories_that_cannot_be_served_are_all_listed) {
  test::TempDir dir;
  LocalObjects objects(dir.path());
  auto r = objects.open({dir.path() / "missing-a", dir.path() / "missing-b"});
  BOOST_REQUIRE(!r);
  BOOST_TEST(r.error().find("missing-a") != std::string::npos);
  BOOST_TEST(r.error().find("missing-b") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
