package messages

import (
	"errors"
	"testing"

	"github.com/feedpipe/feedpipe/shared/layout"
)

func TestImportRoundTrip(t *testing.T) {
	for _, m := range []Import{
		{Kind: KindDelta, Site: "demo", Sequence: 7, UploadID: layout.NewUploadID(7)},
		{Kind: KindWake, Site: "demo", Reason: "expired"},
	} {
		got, err := DecodeImport(m.Encode())
		if err != nil || got != m {
			t.Fatalf("DecodeImport(Encode(%+v)) = %+v, %v", m, got, err)
		}
	}
	d := Import{Kind: KindDelta, Site: "demo", Sequence: 7}
	if d.DeduplicationID() != d.DeduplicationID() {
		t.Fatal("a delta's deduplication id must be stable")
	}
	w := Import{Kind: KindWake, Site: "demo"}
	if w.DeduplicationID() == w.DeduplicationID() {
		t.Fatal("wake deduplication ids must be unique")
	}
	for _, body := range []string{"", "{", `{"kind":"delta","site":"demo","sequence":7,"uploadId":"8-aaaaaaaaaaaaaaaaaaaaaaaaaa"}`, `{"kind":"x","site":"demo"}`, `{"kind":"wake","site":"../"}`} {
		if _, err := DecodeImport(body); !errors.Is(err, ErrUndecodable) {
			t.Errorf("DecodeImport(%q) = %v", body, err)
		}
	}
}
