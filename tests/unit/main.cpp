#define BOOST_TEST_MODULE annex_swarm_unit
#include <boost/test/unit_test.hpp>
