#define BOOST_TEST_MODULE annex_swarm_loopback
#include <boost/test/unit_test.hpp>
