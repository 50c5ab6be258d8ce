#define BOOST_TEST_MODULE annex_swarm_annex
#include <boost/test/unit_test.hpp>
