// PortMapper's life cycle against a scripted router: real io_context and worker
// thread, a fake backend for the faults a real router rarely shows on demand.
#include <boost/test/unit_test.hpp>

#include <mutex>

#include "nat/port_mapper.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::nat;
using namespace std::chrono_literals;

namespace {

// What the fake router holds and was asked; shared with the test (worker thread writes).
struct Router {
  std::mutex mu;
  bool present = true;
  std::set<std::pair<MappedProtocol, std::uint16_t>> taken{{MappedProtocol::Tcp, 4224}};  // held by another host
  std::map<std::pair<MappedProtocol, std::uint16_t>, std::uint16_t> mapped;  // (proto, external) -> internal
  int discovers = 0, unmaps = 0;
  std::string address = "11.0.0.1";
};

class FakeBackend final : public MappingBackend {
public:
  explicit FakeBackend(std::shared_ptr<Router> r) : r_(std::move(r)) {}
  NatMethod method() const override { return NatMethod::Upnp; }
  Result<std::string> discover() override {
    std::lock_guard lock(r_->mu);
    ++r_->discovers;
    if (!r_->present) return Error{"no UPnP internet gateway found"};
    return std::string("fake router");
  }
  Result<std::string> external_address() override {
    std::lock_guard lock(r_->mu);
    return r_->address;
  }
  Result<PortMapping> map(MappedProtocol p, std::uint16_t internal, std::uint16_t wanted, std::chrono::seconds lease) override {
    std::lock_guard lock(r_->mu);
    if (!r_->present) return Error{"connection refused"};
    std::uint16_t port = wanted;
    while (r_->taken.count({p, port})) ++port;  // a conflict: take the next free one
    r_->mapped[{p, port}] = internal;
    return PortMapping{p, internal, port, lease};
  }
  std::optional<bool> still_mapped(const PortMapping& m) override {
    std::lock_guard lock(r_->mu);
    if (!r_->present) return std::nullopt;
    return r_->mapped.count({m.protocol, m.external_port}) > 0;
  }
  Result<bool> unmap(const PortMapping& m) override {
    std::lock_guard lock(r_->mu);
    ++r_->unmaps;
    r_->mapped.erase({m.protocol, m.external_port});
    return true;
  }

private:
  std::shared_ptr<Router> r_;
};

struct Harness {
  asio::io_context io;
  std::shared_ptr<Router> router = std::make_shared<Router>();
  std::vector<std::string> log;
  int changes = 0;
  std::unique_ptr<PortMapper> mapper;

  explicit Harness(std::chrono::seconds lease) {
    PortMapper::Settings s;
    s.method = NatMethod::Upnp;
    s.lease = lease;
    s.ports = {{MappedProtocol::Tcp, 4224}, {MappedProtocol::Udp, 4224}};
    mapper = std::make_unique<PortMapper>(io, s, [r = router](NatMethod, const PortMapper::Settings&) {
      return std::make_unique<FakeBackend>(r);
    });
    mapper->on_log([this](bool, const std::string& line) { log.push_back(line); });
    mapper->on_change([this](const NatStatus&) { ++changes; });
  }
  bool logged(const std::string& text) const {
    return std::any_of(log.begin(), log.end(), [&](const std::string& l) { return l.find(text) != std::string::npos; });
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(port_mapper)

BOOST_AUTO_TEST_CASE(a_taken_port_gets_another_and_stop_removes_every_mapping) {
  Harness h(3600s);
  h.mapper->start();
  test::run_io_until(h.io, [&] { return h.mapper->status().state == "mapped"; });
  const auto& st = h.mapper->status();
  BOOST_REQUIRE(st.mappings.size() == 2u);
  BOOST_TEST(st.mappings[0].external_port == 4225);  // TCP 4224 was taken on the router
  BOOST_TEST(st.mappings[1].external_port == 4224);  // UDP 4224 was free
  BOOST_TEST(st.external_address == "11.0.0.1");
  BOOST_TEST(h.changes >= 1);
  bool stopped = false;
  h.mapper->stop([&] { stopped = true; });
  test::run_io_until(h.io, [&] { return stopped; });
  std::lock_guard lock(h.router->mu);
  BOOST_TEST(h.router->mapped.empty());
  BOOST_TEST(h.router->unmaps == 2);
}

BOOST_AUTO_TEST_CASE(a_mapping_the_router_lost_is_noticed_at_renewal_and_made_again) {
  Harness h(2s);  // renewed every second
  h.mapper->start();
  test::run_io_until(h.io, [&] { return h.mapper->status().state == "mapped"; });
  {
    std::lock_guard lock(h.router->mu);
    h.router->mapped.clear();  // the router restarted
  }
  test::run_io_until(h.io, [&] { return h.logged("the router lost the mapping"); });
  test::run_io_until(h.io, [&] {
    std::lock_guard lock(h.router->mu);
    return h.router->mapped.size() == 2u;
  });
}

BOOST_AUTO_TEST_CASE(no_router_is_reported_once_with_why_and_a_router_that_appears_is_used) {
  Harness h(3600s);
  {
    std::lock_guard lock(h.router->mu);
    h.router->present = false;
  }
  h.mapper->start();
  test::run_io_until(h.io, [&] { return h.mapper->status().settled; });
  BOOST_TEST(h.mapper->status().mappings.empty());
  BOOST_TEST(h.mapper->status().error.find("no UPnP internet gateway") != std::string::npos);
  BOOST_TEST(h.mapper->status().state == "waiting");
  {
    std::lock_guard lock(h.router->mu);
    h.router->present = true;
  }
  // The first retry comes 5 s later.
  test::run_io_until(h.io, [&] { return h.mapper->status().state == "mapped"; }, std::chrono::seconds(30));
  BOOST_TEST(std::count_if(h.log.begin(), h.log.end(), [](const std::string& l) {
               return l.find("port mapping unavailable") != std::string::npos;
             }) == 1);
}

BOOST_AUTO_TEST_SUITE_END()
