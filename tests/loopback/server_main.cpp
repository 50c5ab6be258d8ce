#define BOOST_TEST_MODULE annex_swarm_peer_server
#include <boost/test/unit_test.hpp>
