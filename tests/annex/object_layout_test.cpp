// Our object-path computation and key scan against Debian's real git-annex.
#include <boost/test/unit_test.hpp>

#include <fstream>

#include "node/annex_repo.hpp"
#include "protocol/annex_key.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::test;

BOOST_AUTO_TEST_SUITE(object_layout)

BOOST_AUTO_TEST_CASE(hash_dirs_match_git_annex_examinekey) {
  TempDir dir;
  auto repo = make_annex_repo(dir.path() / "r", {{"a.txt", "alpha\n"}});
  std::vector<std::string> keys{repo.key_of("a.txt"), "WORM-s5-m1700000000--photo.jpg",
                                "SHA1-s0--da39a3ee5e6b4b0d3255bfef95601890afd80709",
                                "MD5E-s3--d41d8cd98f00b204e9800998ecf8427e.tar.gz",
                                "SHA256E-s10-S5-C2--" + std::string(64, 'a')};
  for (const auto& text : keys) {
    auto key = AnnexKey::parse(text);
    BOOST_REQUIRE_MESSAGE(key, key.error());
    auto out = sh(repo.path, "git annex examinekey --format='${hashdirmixed} ${hashdirlower}\\n' '" + text + "'");
    BOOST_TEST(out == key->hash_dir_mixed() + "/ " + key->hash_dir_lower() + "/\n", "key " << text);
  }
}

BOOST_AUTO_TEST_CASE(scan_lists_exactly_the_present_keys) {
  TempDir dir;
  auto repo = make_annex_repo(dir.path() / "r", {{"a", "one\n"}, {"b", "two\n"}, {"c", "three\n"}});
  auto opened = open_annex_repo(repo.path);
  BOOST_REQUIRE_MESSAGE(opened, opened.error());
  BOOST_TEST(opened->uuid == repo.uuid);
  auto scan = scan_present_keys(*opened);
  std::vector<std::string> expected{repo.key_of("a"), repo.key_of("b"), repo.key_of("c")};
  std::sort(expected.begin(), expected.end());
  BOOST_TEST(scan.keys == expected, boost::test_tools::per_element());

  auto before = change_stamp(*opened);
  sh(repo.path, "git annex drop -q --force b");
  BOOST_TEST(!(change_stamp(*opened) == before));
  scan = scan_present_keys(*opened);
  BOOST_TEST(scan.keys.size() == 2u);
  BOOST_TEST(!std::binary_search(scan.keys.begin(), scan.keys.end(), repo.key_of("b")));
}

BOOST_AUTO_TEST_CASE(a_directory_that_is_no_annex_repository_says_what_to_do) {
  TempDir dir;
  auto missing = open_annex_repo(dir.path() / "nope");
  BOOST_REQUIRE(!missing);
  BOOST_TEST(missing.error().find("does not exist") != std::string::npos);
  sh(dir.path(), "git init -q plain");
  auto plain = open_annex_repo(dir.path() / "plain");
  BOOST_REQUIRE(!plain);
  BOOST_TEST(plain.error().find("git annex init") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
