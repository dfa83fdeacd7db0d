package awstest

import "testing"

// TestExternal runs the suite against the backend FEEDPIPE_TEST_ENDPOINT
// names (moto server, LocalStack or AWS), with the Features preset of
// FEEDPIPE_TEST_BACKEND.
func TestExternal(t *testing.T) {
	h, ok := ExternalHarness(t)
	if !ok {
		t.Skip("FEEDPIPE_TEST_ENDPOINT is not set")
	}
	Run(t, h)
}
