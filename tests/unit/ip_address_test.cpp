#include <boost/test/unit_test.hpp>

#include "protocol/ip_address.hpp"

using namespace annexswarm;

BOOST_AUTO_TEST_SUITE(ip_address)

BOOST_AUTO_TEST_CASE(addresses_are_sorted_by_whether_the_internet_can_reach_them) {
  struct Case {
    const char* text;
    AddressScope scope;
  };
  for (const auto& c : std::vector<Case>{
           {"11.0.0.1", AddressScope::Global},
           {"8.8.8.8", AddressScope::Global},
           {"10.0.1.2", AddressScope::Private},
           {"172.16.0.1", AddressScope::Private},
           {"172.32.0.1", AddressScope::Global},
           {"192.168.1.1", AddressScope::Private},
           {"100.64.0.1", AddressScope::Private},  // carrier-grade NAT
           {"127.0.0.1", AddressScope::Loopback},
           {"169.254.3.4", AddressScope::LinkLocal},
           {"0.0.0.0", AddressScope::Unspecified},
           {"203.0.113.7", AddressScope::Reserved},
           {"198.51.100.7", AddressScope::Reserved},
           {"192.0.2.1", AddressScope::Reserved},
           {"198.18.0.1", AddressScope::Reserved},
           {"224.0.0.251", AddressScope::Reserved},
           {"255.255.255.255", AddressScope::Reserved},
           {"2001:db8:1::2", AddressScope::Global},
           {"2a01:4f8::1", AddressScope::Global},
           {"fd00::1", AddressScope::Private},
           {"fe80::1", AddressScope::LinkLocal},
           {"::1", AddressScope::Loopback},
           {"::", AddressScope::Unspecified},
           {"ff02::1", AddressScope::Reserved},
           {"::ffff:10.0.0.1", AddressScope::Private},
           {"::ffff:11.0.0.1", AddressScope::Global},
           {"example.org", AddressScope::Invalid},
           {"1.2.3.4:80", AddressScope::Invalid},
           {"", AddressScope::Invalid},
           {"1.2.3", AddressScope::Invalid},
       }) {
    BOOST_TEST_INFO(c.text);
    BOOST_TEST((address_scope(c.text) == c.scope));
  }
}

BOOST_AUTO_TEST_CASE(host_port_brackets_ipv6) {
  BOOST_TEST(host_port("11.0.0.1", 4224) == "11.0.0.1:4224");
  BOOST_TEST(host_port("2001:db8::1", 4224) == "[2001:db8::1]:4224");
}

BOOST_AUTO_TEST_CASE(split_host_port_undoes_host_port) {
  for (const auto& [host, port] : std::vector<std::pair<std::string, unsigned>>{
           {"11.0.0.1", 4224}, {"2001:db8::1", 1}, {"bootstrap.jami.net", 4222}}) {
    auto [h, p] = split_host_port(host_port(host, port));
    BOOST_TEST(h == host);
    BOOST_TEST(p == std::to_string(port));
  }
}

BOOST_AUTO_TEST_SUITE_END()
