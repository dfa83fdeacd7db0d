package site

import (
	"strings"
	"testing"

	"github.com/feedpipe/feedpipe/shared/apiauth"
)

func TestValidateReportsEveryProblem(t *testing.T) {
	_, hash := apiauth.NewToken()
	good := Config{Site: "demo", TokenHashes: []string{hash}}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	bad := Config{Site: "Demo", TokenHashes: []string{"plain", hash, hash}, MaxFullDeleteRatio: 2,
		Destinations: []Destination{{Name: "x", Type: "ftp"}, {Name: "x", Type: "webhook"}}}
	err := bad.Validate()
	for _, want := range []string{"site id", "want 1-2 active tokens", "tokenHashes[0]", "maxFullDeleteRatio", "type \"ftp\"", "used twice", "needs a url"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	if l := (Config{}).Limits(); l.MaxOutstanding != 100 || l.MaxFullDeleteRatio != 0.5 || l.MaxContentLength != 5<<30 {
		t.Errorf("defaults: %+v", l)
	}
}
