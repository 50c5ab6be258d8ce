#define BOOST_TEST_MODULE annex_swarm_wire
#include <boost/test/unit_test.hpp>
