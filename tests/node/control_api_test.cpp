// The control API's one JSON boundary: requests become typed, or a typed error.
#include <boost/test/unit_test.hpp>

#include "node/control_api.hpp"

using namespace annexswarm;
using nlohmann::json;

namespace {
const std::string kKey = "SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.txt";
const std::string kUuid = "5b3b4ab8-0e3a-4c4f-9c1c-2d6e1f0a9b77";

std::optional<ControlErrorCode> error_of(const json& request) {
  auto parsed = parse_control_request(request);
  if (auto* e = std::get_if<ControlError>(&parsed)) return e->code;
  return std::nullopt;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(control_api)

BOOST_AUTO_TEST_CASE(well_formed_requests_become_their_types) {
  auto get = parse_control_request({{"op", "get"}, {"key", kKey}, {"to", "/tmp/x"}, {"repo", kUuid}});
  auto* request = std::get_if<ControlRequest>(&get);
  BOOST_REQUIRE(request);
  auto* g = std::get_if<GetRequest>(request);
  BOOST_REQUIRE(g);
  BOOST_TEST(g->key.str() == kKey);
  BOOST_TEST(g->to == "/tmp/x");
  BOOST_TEST(g->repo == kUuid);
  BOOST_TEST(!g->unverified);
  auto store = parse_control_request({{"op", "store"}, {"key", kKey}, {"store", kUuid}, {"file", "/tmp/f"}});
  BOOST_TEST(std::holds_alternative<StoreRequest>(std::get<ControlRequest>(store)));
  auto status = parse_control_request({{"op", "status"}});
  BOOST_TEST(std::holds_alternative<StatusRequest>(std::get<ControlRequest>(status)));
  auto one = parse_control_request({{"op", "repair"}, {"key", kKey}, {"store", kUuid}});
  BOOST_TEST(std::holds_alternative<RepairRequest>(std::get<ControlRequest>(one)));
  auto all = parse_control_request({{"op", "repair"}, {"all", true}, {"store", kUuid}});
  auto* a = std::get_if<RepairAllRequest>(&std::get<ControlRequest>(all));
  BOOST_REQUIRE(a);
  BOOST_TEST(a->store == kUuid);
}

BOOST_AUTO_TEST_CASE(bad_requests_carry_a_code_to_match_on) {
  BOOST_TEST((error_of({{"op", "whereis"}}) == ControlErrorCode::BadRequest));
  BOOST_TEST((error_of({{"op", "whereis"}, {"key", "../../etc/passwd"}}) == ControlErrorCode::BadKey));
  BOOST_TEST((error_of({{"op", "get"}, {"key", kKey}, {"to", "relative/path"}}) == ControlErrorCode::BadRequest));
  BOOST_TEST((error_of({{"op", "get"}, {"key", kKey}, {"to", "/x"}, {"repo", "nope"}}) == ControlErrorCode::BadUuid));
  BOOST_TEST((error_of({{"op", "discover"}, {"uuid", "nope"}}) == ControlErrorCode::BadUuid));
  BOOST_TEST((error_of({{"op", "present"}, {"key", kKey}}) == ControlErrorCode::BadUuid));
  BOOST_TEST((error_of({{"op", "store"}, {"key", kKey}, {"store", kUuid}, {"file", "rel"}}) == ControlErrorCode::BadRequest));
  BOOST_TEST((error_of({{"op", "remove"}, {"key", 7}, {"store", kUuid}}) == ControlErrorCode::BadRequest));
  BOOST_TEST((error_of({{"op", "launch-missiles"}}) == ControlErrorCode::UnknownOp));
  BOOST_TEST((error_of({{"op", "repair"}, {"all", false}, {"store", kUuid}}) == ControlErrorCode::BadRequest));
  BOOST_TEST((error_of({{"op", "repair"}, {"all", true}, {"store", "nope"}}) == ControlErrorCode::BadUuid));
  BOOST_TEST(to_string(ControlErrorCode::NotAStore) == "not-a-store");
}

BOOST_AUTO_TEST_SUITE_END()
