#define BOOST_TEST_MODULE annex_swarm_get
#include <boost/test/unit_test.hpp>
