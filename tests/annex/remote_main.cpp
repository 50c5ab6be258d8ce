#define BOOST_TEST_MODULE annex_swarm_special_remote
#include <boost/test/unit_test.hpp>
