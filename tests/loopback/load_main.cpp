#define BOOST_TEST_MODULE annex_swarm_load
#include <boost/test/unit_test.hpp>
