#define BOOST_TEST_MODULE annex_swarm_services
#include <boost/test/unit_test.hpp>
