#define BOOST_TEST_MODULE annex_swarm_netns
#include <boost/test/unit_test.hpp>
