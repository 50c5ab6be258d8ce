#define BOOST_TEST_MODULE annex_swarm_git_over_the_swarm
#include <boost/test/unit_test.hpp>
