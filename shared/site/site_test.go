package site

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/localcloud/localcloudtest"
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

func TestUpdateNeverLosesAConcurrentEdit(t *testing.T) {
	ctx := context.Background()
	env := localcloudtest.Start(t)
	env.Buckets(t, "store")
	_, hash := apiauth.NewToken()
	if err := Save(ctx, env.S3, "store", Config{Site: "shop", TokenHashes: []string{hash}}); err != nil {
		t.Fatal(err)
	}
	addHook := func(name string) func(*Config) error {
		return func(c *Config) error {
			c.Destinations = append(c.Destinations, Destination{Name: name, Type: "webhook", URL: "https://example.com/" + name, Secrets: []string{"s"}})
			return nil
		}
	}
	// The first attempt of the outer edit is overtaken by another edit
	// between its read and its write.
	calls := 0
	_, err := Update(ctx, env.S3, "store", "shop", func(c *Config) error {
		calls++
		if calls == 1 {
			if _, err := Update(ctx, env.S3, "store", "shop", addHook("inner")); err != nil {
				return err
			}
		}
		return addHook("outer")(c)
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Errorf("edit called %d times, want 2 (once more after the lost write)", calls)
	}
	// Many at once.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			if _, err := Update(ctx, env.S3, "store", "shop", addHook(fmt.Sprintf("d%d", i))); err != nil && !errors.Is(err, ErrConflict) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c, err := Load(ctx, env.S3, "store", "shop")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range c.Destinations {
		names = append(names, d.Name)
	}
	for _, want := range []string{"inner", "outer"} {
		if !slices.Contains(names, want) {
			t.Errorf("destinations %v lost %s", names, want)
		}
	}
	if len(names) < 2+1 {
		t.Errorf("destinations %v: the concurrent edits all failed", names)
	}
	// An edit that fails writes nothing.
	if _, err := Update(ctx, env.S3, "store", "shop", addHook("inner")); err == nil || !strings.Contains(err.Error(), "used twice") {
		t.Errorf("an invalid edit = %v, want the validation error", err)
	}
}
