package feedbench

import (
	"bytes"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestRevisionsShareIDsNotProducts(t *testing.T) {
	var a, b bytes.Buffer
	if err := WriteRevision(&a, 200, 3, 0); err != nil {
		t.Fatal(err)
	}
	if err := WriteRevision(&b, 200, 3, 1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), Data(200, 3)) {
		t.Error("Write and WriteRevision(rev 0) differ")
	}
	la, lb := strings.Split(a.String(), "\n"), strings.Split(b.String(), "\n")
	if len(la) != 201 || len(lb) != 201 {
		t.Fatalf("%d and %d lines, want 200 each", len(la)-1, len(lb)-1)
	}
	for i := range 200 {
		ida, _, _ := strings.Cut(la[i], `,"product"`)
		idb, _, _ := strings.Cut(lb[i], `,"product"`)
		if ida != idb && !strings.Contains(la[i], `"delete"`) {
			t.Fatalf("line %d: %s vs %s: revisions must keep ids and ops", i+1, ida, idb)
		}
		if strings.Contains(la[i], `"upsert"`) && la[i] == lb[i] {
			t.Fatalf("line %d is the same in both revisions", i+1)
		}
	}
}

func TestZstdRatioAndCeilingLineCount(t *testing.T) {
	data, plain, err := Zstd(3000, 9, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ratio := float64(plain) / float64(len(data)); ratio < 3 || ratio > 5 {
		t.Errorf("zstd ratio %.2f, want 3–5 like real catalog JSON", ratio)
	}
	if avg := plain / 3000; avg < 800 || avg > 1300 {
		t.Errorf("average line %d bytes, want about 1 KB", avg)
	}
	c, err := NewCeiling()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, encode := range []bool{true, false} {
		for range 2 { // a Ceiling is reused
			n, err := c.Run(bytes.NewReader(data), encode)
			if err != nil || n != 3000 {
				t.Errorf("Run(encode=%v) = %d, %v; want 3000 lines", encode, n, err)
			}
		}
	}
	// A stream that is not zstd, or has no ids, is an error, not a count.
	if _, err := c.Run(bytes.NewReader([]byte("not zstd at all")), false); err == nil {
		t.Error("Run on non-zstd input: no error")
	}
	enc, _ := zstd.NewWriter(nil)
	if _, err := c.Run(bytes.NewReader(enc.EncodeAll([]byte("{}\n{}\n"), nil)), false); err == nil {
		t.Error("Run on lines without ids: no error")
	}
}
