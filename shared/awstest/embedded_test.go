package awstest

import (
	"testing"

	"github.com/feedpipe/feedpipe/shared/localcloud"
)

// startEmbedded starts the embedded local cloud for one test and describes
// it as a Harness.
func startEmbedded(t testing.TB) Harness {
	t.Helper()
	cloud, err := localcloud.Start(t.Context(), localcloud.Config{})
	if err != nil {
		t.Fatalf("start the local cloud: %v", err)
	}
	t.Cleanup(func() {
		if err := cloud.Close(); err != nil {
			t.Errorf("close the local cloud: %v", err)
		}
	})
	accessKey, secretKey := cloud.Credentials()
	h := Harness{
		Name:      "embedded",
		Endpoint:  cloud.Endpoint(),
		Region:    cloud.Region(),
		AccessKey: accessKey,
		SecretKey: secretKey,
		Advance:   cloud.Clock().Advance,
	}
	h.S3, h.SQS = NewClients(h.Endpoint, h.Region, h.AccessKey, h.SecretKey)
	return h
}

// TestEmbedded runs the suite against feedpipe's embedded local cloud, which
// must conform everywhere: it sets no Features flag.
func TestEmbedded(t *testing.T) {
	Run(t, startEmbedded(t))
}
