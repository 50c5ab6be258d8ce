#define BOOST_TEST_MODULE annex_swarm_fetcher
#include <boost/test/unit_test.hpp>
