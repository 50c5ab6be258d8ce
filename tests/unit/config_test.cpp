#include <boost/test/unit_test.hpp>

#include "tests/support/test_support.hpp"

#include <fstream>

#include "node/config.hpp"

using namespace annexswarm;

BOOST_AUTO_TEST_SUITE(daemon_config)

BOOST_AUTO_TEST_CASE(defaults_join_the_public_dht) {
  DaemonConfig c;
  BOOST_TEST(c.port == kDefaultPort);
  BOOST_REQUIRE(c.bootstrap.size() == 1u);
  BOOST_TEST(c.bootstrap[0] == std::string(kPublicBootstrap));
  BOOST_TEST(effective_refresh(c).count() == 8 * 60);
}

BOOST_AUTO_TEST_CASE(config_file_sets_every_kind_of_value) {
  DaemonConfig c;
  std::vector<std::string> errors;
  auto token = SwarmToken::generate();
  apply_config_text(c,
                    "# comment\n"
                    "state-dir = /tmp/x\n"
                    "port = 5000   # trailing comment\n"
                    "listen = 127.0.0.1\n"
                    "bootstrap = 127.0.0.1:4000\n"
                    "bootstrap = 10.0.0.2:4000\n"
                    "swarm = " + token.str() + "\n"
                    "swarm = public\n"
                    "repo = /srv/annex\n"
                    "lan-discovery = off\n"
                    "announce-rate = 50\n"
                    "announce-refresh = 20m\n"
                    "poll-interval = 2s\n"
                    "log-level = debug\n",
                    "test.conf", errors);
  BOOST_TEST(errors.empty());
  BOOST_TEST(c.state_dir == "/tmp/x");
  BOOST_TEST(c.port == 5000);
  BOOST_TEST(c.listen == "127.0.0.1");
  BOOST_TEST(c.bootstrap.size() == 2u);  // the file replaces the default
  BOOST_TEST(c.swarms.size() == 2u);
  BOOST_TEST(c.repos.size() == 1u);
  BOOST_TEST(!c.lan_discovery);
  BOOST_TEST(c.announce_rate == 50);
  BOOST_TEST(effective_refresh(c).count() == 20 * 60);
  BOOST_TEST(c.poll_interval.count() == 2);
  BOOST_TEST((c.log_level == log::Level::Debug));
}

BOOST_AUTO_TEST_CASE(every_problem_is_listed_with_its_line) {
  DaemonConfig c;
  std::vector<std::string> errors;
  apply_config_text(c, "port = 70000\nnonsense line\nswarm = swarm1-zzz\ncolour = blue\nlisten = x\n",
                    "bad.conf", errors);
  BOOST_REQUIRE_EQUAL(errors.size(), 5u);
  BOOST_TEST(errors[0].find("bad.conf:1") == 0u);
  BOOST_TEST(errors[1].find("bad.conf:2") == 0u);
  BOOST_TEST(errors[2].find("bad.conf:3") == 0u);
  BOOST_TEST(errors[3].find("unknown setting 'colour'") != std::string::npos);
  BOOST_TEST(errors[4].find("bad.conf:5") == 0u);
}

BOOST_AUTO_TEST_CASE(transfer_limits_and_the_peer_port_are_settings) {
  DaemonConfig c;
  std::vector<std::string> errors;
  apply_config_text(c, "peer-port = 5000\nmax-peers = 8\nupload-rate-per-peer = 2M\ndownload-rate = 500K\n",
                    "limits.conf", errors);
  BOOST_TEST(errors.empty());
  BOOST_TEST(c.peer_port.value() == 5000);
  BOOST_TEST(c.max_peers == 8u);
  BOOST_TEST(c.upload_rate_per_peer == 2e6);
  BOOST_TEST(c.download_rate == 5e5);
  BOOST_TEST(!DaemonConfig{}.peer_port);  // unset: the DHT's port number
  apply_config_text(c, "peer-port = 65536\nmax-peers = 0\ndownload-rate = fast\n", "bad.conf", errors);
  BOOST_TEST(errors.size() == 3u);
}

BOOST_AUTO_TEST_CASE(replicate_interval_and_store_dir_are_read_and_have_defaults) {
  DaemonConfig c;
  c.state_dir = "/var/lib/annex-swarm";
  BOOST_TEST(c.replicate_interval.count() == 300);
  BOOST_TEST(c.stores() == std::filesystem::path("/var/lib/annex-swarm/stores"));
  std::vector<std::string> errors;
  apply_config_text(c, "replicate-interval = 1m\nstore-dir = /mnt/big/swarm\n", "r.conf", errors);
  BOOST_TEST(errors.empty());
  BOOST_TEST(c.replicate_interval.count() == 60);
  BOOST_TEST(c.stores() == std::filesystem::path("/mnt/big/swarm"));
  apply_config_text(c, "replicate-interval = 0\n", "r.conf", errors);
  BOOST_TEST(c.replicate_interval.count() == 0);
  apply_config_text(c, "replicate-interval = soon\nstore-dir =\n", "bad.conf", errors);
  BOOST_TEST(errors.size() == 2u);
}

BOOST_AUTO_TEST_CASE(repair_interval_is_a_duration_or_0_for_never) {
  DaemonConfig c;
  BOOST_TEST(c.repair_interval.count() == 6 * 3600);
  std::vector<std::string> errors;
  apply_config_text(c, "repair-interval = 30m\n", "repair.conf", errors);
  BOOST_TEST(errors.empty());
  BOOST_TEST(c.repair_interval.count() == 1800);
  apply_config_text(c, "repair-interval = 0\n", "repair.conf", errors);
  BOOST_TEST(errors.empty());
  BOOST_TEST(c.repair_interval.count() == 0);
  apply_config_text(c, "repair-interval = often\n", "bad.conf", errors);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].find("(or 0)") != std::string::npos, errors[0]);
}

BOOST_AUTO_TEST_CASE(rules_admins_are_fingerprints_and_repeatable) {
  DaemonConfig c;
  std::vector<std::string> errors;
  apply_config_text(c,
                    "rules-admin = 0123 4567 89ab cdef 0123  4567 89AB CDEF 0123 4567\n"
                    "rules-admin = 0x" + std::string(40, 'f') + "\nrules-check = 5s\n",
                    "rules.conf", errors);
  BOOST_TEST(errors.empty());
  BOOST_TEST(c.rules_admins ==
             (std::vector<std::string>{"0123456789ABCDEF0123456789ABCDEF01234567", std::string(40, 'F')}));
  BOOST_TEST(c.rules_check.count() == 5);
  apply_config_text(c, "rules-admin = alice@example.org\n", "bad.conf", errors);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].find("bad.conf:1") != std::string::npos, errors[0]);
  BOOST_TEST(errors[0].find("fingerprint") != std::string::npos, errors[0]);
}

BOOST_AUTO_TEST_CASE(the_stores_dotfile_sets_limits_and_names_its_mistakes_by_line) {
  auto limits = parse_node_limits("# a small box\nstorage = 10M\nupload-rate = 2M\ndownload-rate = 0\nhours = 22:30-06:00\n",
                                  "/s/.annex-swarm");
  BOOST_REQUIRE_MESSAGE(limits, limits.error());
  BOOST_TEST(limits->storage.value() == 10000000u);
  BOOST_TEST(limits->upload_rate.value() == 2e6);
  BOOST_TEST(limits->download_rate.value() == 0.0);
  BOOST_TEST(limits->hours->text() == "22:30-06:00");
  BOOST_TEST(limits->hours->contains(23 * 60));    // past midnight: wraps
  BOOST_TEST(limits->hours->contains(5 * 60 + 59));
  BOOST_TEST(!limits->hours->contains(12 * 60));
  BOOST_TEST(parse_hours("01:00-07:00")->contains(60));
  BOOST_TEST(!parse_hours("01:00-07:00")->contains(7 * 60));
  BOOST_TEST(!parse_hours("7-9"));
  BOOST_TEST(!parse_hours("25:00-07:00"));
  auto bad = parse_node_limits("storage = 1G\nspeed = fast\nstorage = 2G\nhours = soon\n", "/s/.annex-swarm");
  BOOST_REQUIRE(!bad);
  BOOST_TEST(bad.error().find("/s/.annex-swarm:2: unknown limit 'speed'") != std::string::npos, bad.error());
  BOOST_TEST(bad.error().find("/s/.annex-swarm:3: storage is given twice") != std::string::npos, bad.error());
  BOOST_TEST(bad.error().find("/s/.annex-swarm:4: hours") != std::string::npos, bad.error());
  // The lower limit wins; 0 (rates) or none (bytes) is no limit.
  BOOST_TEST(lower_rate(0, 2e6) == 2e6);
  BOOST_TEST(lower_rate(1e6, 2e6) == 1e6);
  BOOST_TEST(lower_rate(3e6, 0.0) == 3e6);
  BOOST_TEST(lower_limit(std::nullopt, 5u).value() == 5u);
  BOOST_TEST(lower_limit(7u, 5u).value() == 5u);
  BOOST_TEST(!lower_limit(std::nullopt, std::nullopt));
  // The same names work in the config.
  DaemonConfig c;
  std::vector<std::string> errors;
  apply_config_text(c, "storage = 5G\nhours = 01:00-07:00\n", "node.conf", errors);
  BOOST_TEST(errors.empty());
  BOOST_TEST(c.storage.value() == 5000000000u);
  BOOST_TEST(c.hours->text() == "01:00-07:00");
}

BOOST_AUTO_TEST_CASE(nat_method_lease_and_reachability_check_are_settings) {
  DaemonConfig c;
  BOOST_TEST((c.nat == nat::NatMethod::Auto));
  std::vector<std::string> errors;
  apply_config_text(c, "nat = natpmp\nnat-lease = 20m\nreachability-check = 10m\n", "nat.conf", errors);
  BOOST_TEST(errors.empty());
  BOOST_TEST((c.nat == nat::NatMethod::NatPmp));
  BOOST_TEST(c.nat_lease.count() == 1200);
  BOOST_TEST(c.reachability_check.count() == 600);
  apply_config_text(c, "nat = pcp\nnat-lease = 2s\nreachability-check = 1s\n", "bad.conf", errors);
  BOOST_REQUIRE(errors.size() == 3u);
  BOOST_TEST(errors[0].find("expected auto, upnp, natpmp or none") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bootstrap_none_makes_a_first_node_with_long_refresh) {
  DaemonConfig c;
  std::vector<std::string> errors;
  apply_setting(c, "bootstrap", "none", errors, "--bootstrap");
  BOOST_TEST(errors.empty());
  BOOST_TEST(c.bootstrap.empty());
  BOOST_TEST(effective_refresh(c).count() == 50 * 60);
  apply_setting(c, "bootstrap", "192.168.1.2:4224", errors, "--bootstrap");
  BOOST_TEST(effective_refresh(c).count() == 50 * 60);
}

BOOST_AUTO_TEST_CASE(advertise_takes_an_address_and_port_or_a_port_alone) {
  DaemonConfig c;
  std::vector<std::string> errors;
  apply_config_text(c, "advertise = 192.168.1.10:5000\nadvertise = :5000\nadvertise = [2001:db8::7]:6000\n", "node.conf",
                    errors);
  BOOST_TEST(errors.empty());
  BOOST_REQUIRE(c.advertise.size() == 3u);
  BOOST_TEST((c.advertise[0] == DaemonConfig::Advertised{"192.168.1.10", 5000}));
  BOOST_TEST((c.advertise[1] == DaemonConfig::Advertised{"", 5000}));
  BOOST_TEST((c.advertise[2] == DaemonConfig::Advertised{"2001:db8::7", 6000}));
  apply_cli_settings(c, {{"advertise", "127.0.0.1:7000"}}, errors);
  BOOST_TEST(errors.empty());
  BOOST_TEST(c.advertise.size() == 1u);  // the command line's list replaces the file's
  for (const char* bad : {"5000", "host.example:5000", "1.2.3.4:0", "1.2.3.4:70000", "0.0.0.0:5000", "224.0.0.1:5000", ":"})
    apply_setting(c, "advertise", bad, errors, "--advertise");
  BOOST_TEST(errors.size() == 7u);
  BOOST_TEST(c.advertise.size() == 1u);
}

BOOST_AUTO_TEST_CASE(command_line_lists_replace_the_files_lists) {
  DaemonConfig c;
  std::vector<std::string> errors;
  auto a = SwarmToken::generate(), b = SwarmToken::generate();
  apply_config_text(c,
                    "bootstrap = 10.0.0.1:4000\nbootstrap = 10.0.0.2:4000\nswarm = " + a.str() +
                        "\nrepo = /srv/one\nrepo = /srv/two\n",
                    "node.conf", errors);
  apply_cli_settings(c, {{"bootstrap", "10.0.0.3:4000"}, {"bootstrap", "10.0.0.4:4000"}, {"swarm", b.str()},
                         {"repo", "/srv/three"}},
                     errors);
  BOOST_TEST(errors.empty());
  BOOST_TEST(c.bootstrap == (std::vector<std::string>{"10.0.0.3:4000", "10.0.0.4:4000"}));
  BOOST_REQUIRE(c.swarms.size() == 1u);
  BOOST_TEST((c.swarms[0] == b));
  BOOST_TEST(c.repos == (std::vector<std::filesystem::path>{"/srv/three"}));
  BOOST_TEST(c.repo_origins == (std::vector<std::string>{"--repo"}));
  // Lists not given on the command line stay the file's.
  DaemonConfig d;
  apply_config_text(d, "repo = /srv/one\n", "node.conf", errors);
  apply_cli_settings(d, {{"port", "5000"}}, errors);
  BOOST_TEST(d.repo_origins == (std::vector<std::string>{"node.conf:1"}));
}

BOOST_AUTO_TEST_CASE(a_swarm_file_holds_tokens_and_its_errors_name_file_and_line) {
  test::TempDir dir;
  auto a = SwarmToken::generate(), b = SwarmToken::generate();
  auto good = dir.path() / "tokens";
  std::ofstream(good) << "# the family swarm\n" << a.str() << "\n\n" << b.str() << "  # the office\n";
  DaemonConfig c;
  std::vector<std::string> errors;
  apply_cli_settings(c, {{"swarm-file", good.string()}}, errors);
  BOOST_TEST(errors.empty());
  BOOST_REQUIRE(c.swarms.size() == 2u);
  BOOST_TEST((c.swarms[0] == a));
  BOOST_TEST((c.swarms[1] == b));

  auto bad = dir.path() / "bad";
  std::ofstream(bad) << a.str() << "\nswarm1-notatoken\n";
  apply_cli_settings(c, {{"swarm-file", bad.string()}}, errors);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].find(bad.string() + ":2:") != std::string::npos, errors[0]);
  errors.clear();
  apply_config_text(c, "swarm-file = " + (dir.path() / "missing").string() + "\n", "node.conf", errors);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].starts_with("node.conf:1"), errors[0]);
  BOOST_TEST(errors[0].find("cannot read") != std::string::npos, errors[0]);
}

BOOST_AUTO_TEST_CASE(rates_take_decimal_suffixes) {
  BOOST_TEST(parse_rate("0").value() == 0.0);
  BOOST_TEST(parse_rate("25M").value() == 25e6);
  BOOST_TEST(parse_rate("500k").value() == 5e5);
  BOOST_TEST(!parse_rate("fast"));
  BOOST_TEST(!parse_rate("-1M"));
  DaemonConfig c;
  std::vector<std::string> errors;
  apply_setting(c, "upload-rate", "2G", errors, "--upload-rate");
  BOOST_TEST(errors.empty());
  BOOST_TEST(c.upload_rate == 2e9);
}

BOOST_AUTO_TEST_CASE(durations_need_a_positive_count) {
  BOOST_TEST(parse_duration("90s").value().count() == 90);
  BOOST_TEST(parse_duration("2h").value().count() == 7200);
  BOOST_TEST(parse_duration("15").value().count() == 15);
  BOOST_TEST(!parse_duration("-1m"));
  BOOST_TEST(!parse_duration("m"));
  DaemonConfig c;
  std::vector<std::string> errors;
  apply_setting(c, "announce-refresh", "2h", errors, "--announce-refresh");
  BOOST_TEST(errors.size() == 1u);  // records live 60 minutes
}

BOOST_AUTO_TEST_SUITE_END()
