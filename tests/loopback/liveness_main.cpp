#define BOOST_TEST_MODULE annex_swarm_liveness
#include <boost/test/unit_test.hpp>
