#define BOOST_TEST_MODULE annex_swarm_replicated_store
#include <boost/test/unit_test.hpp>
