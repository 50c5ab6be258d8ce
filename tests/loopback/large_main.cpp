#define BOOST_TEST_MODULE annex_swarm_large
#include <boost/test/unit_test.hpp>
