package layout

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRoundTrips(t *testing.T) {
	id := NewUploadID(42)
	if n, err := ParseUploadID(id); err != nil || n != 42 {
		t.Fatalf("ParseUploadID(%q) = %d, %v", id, n, err)
	}
	in := Incoming{Site: "shop-1", Sequence: 42, UploadID: id}
	if got, err := ParseIncoming(in.Key()); err != nil || got != in {
		t.Fatalf("ParseIncoming(%q) = %+v, %v", in.Key(), got, err)
	}
	for _, enc := range []Encoding{Identity, Gzip, Zstd} {
		im := Import{Site: "shop-1", Sequence: 7, UploadID: NewUploadID(7), Encoding: enc}
		if got, err := ParseImport(im.Key()); err != nil || got != im {
			t.Fatalf("ParseImport(%q) = %+v, %v", im.Key(), got, err)
		}
	}
	if site, n, err := ParseUploadRecordKey(UploadRecordKey("demo", 9)); err != nil || site != "demo" || n != 9 {
		t.Fatalf("ParseUploadRecordKey = %s %d %v", site, n, err)
	}
	if site, v, err := ParseCatalogVersionKey(CatalogVersionKey("demo", 3)); err != nil || site != "demo" || v != 3 {
		t.Fatalf("ParseCatalogVersionKey = %s %d %v", site, v, err)
	}
	if site, err := ParsePendingKey(PendingKey("demo")); err != nil || site != "demo" {
		t.Fatalf("ParsePendingKey = %s %v", site, err)
	}
}

func TestKeysSortInSequenceOrder(t *testing.T) {
	if !(UploadRecordKey("s", 9) < UploadRecordKey("s", 10)) {
		t.Fatal("record keys do not sort by sequence")
	}
}

func TestRejectsHostileNames(t *testing.T) {
	for _, site := range []string{"", "../x", "A", "a/b", "a%2Fb", "-a", "ünï", strings.Repeat("a", 64)} {
		if err := ValidateSite(site); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateSite(%q) = %v", site, err)
		}
	}
	other := NewUploadID(43)
	for _, key := range []string{
		"incoming/demo/00000000000000000042-" + other, // id carries another sequence
		"incoming/../00000000000000000042-" + NewUploadID(42),
		"incoming/demo/42-" + NewUploadID(42),
		"incoming/demo/00000000000000000000-0-aaaaaaaaaaaaaaaaaaaaaaaaaa",
		"other/demo/00000000000000000042-" + NewUploadID(42),
	} {
		if _, err := ParseIncoming(key); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseIncoming(%q) = %v", key, err)
		}
	}
	for _, id := range []string{"", "42", "42-short", "0-aaaaaaaaaaaaaaaaaaaaaaaaaa", "42-AAAAAAAAAAAAAAAAAAAAAAAAAA", "../x"} {
		if _, err := ParseUploadID(id); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseUploadID(%q) = %v", id, err)
		}
	}
	if ValidateProductID("") == nil || ValidateProductID(strings.Repeat("x", 257)) == nil || ValidateProductID("\xff") == nil {
		t.Error("bad product ids accepted")
	}
	if ValidateProductID("../sku/ünï%2F") != nil {
		t.Error("a product id with path characters and unicode was refused; it is never used raw in a key")
	}
}

func FuzzParseIncoming(f *testing.F) {
	f.Add(Incoming{Site: "demo", Sequence: 1, UploadID: NewUploadID(1)}.Key())
	f.Add("incoming/x/y")
	f.Fuzz(func(t *testing.T, key string) {
		in, err := ParseIncoming(key)
		if err != nil {
			return
		}
		if in.Key() != key {
			t.Fatalf("ParseIncoming(%q).Key() = %q", key, in.Key())
		}
	})
}

func TestEnvInt(t *testing.T) {
	t.Setenv("FEEDPIPE_TEST_N", "")
	if n, err := EnvInt("FEEDPIPE_TEST_N", 5, 1); err != nil || n != 5 {
		t.Fatalf("unset: %d, %v", n, err)
	}
	t.Setenv("FEEDPIPE_TEST_N", "7")
	if d, err := EnvSeconds("FEEDPIPE_TEST_N", time.Minute, 1); err != nil || d != 7*time.Second {
		t.Fatalf("7 s: %v, %v", d, err)
	}
	for _, bad := range []string{"0", "-1", "x", "1.5"} {
		t.Setenv("FEEDPIPE_TEST_N", bad)
		if _, err := EnvInt("FEEDPIPE_TEST_N", 5, 1); err == nil || !strings.Contains(err.Error(), "FEEDPIPE_TEST_N") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
