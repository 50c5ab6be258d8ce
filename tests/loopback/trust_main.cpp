#define BOOST_TEST_MODULE annex_swarm_trust
#include <boost/test/unit_test.hpp>
