#define BOOST_TEST_MODULE annex_swarm_peer_link
#include <boost/test/unit_test.hpp>
