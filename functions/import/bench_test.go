package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/klauspost/compress/zstd"

	"github.com/feedpipe/feedpipe/shared/feed/feedbench"
	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/metrics"
	"github.com/feedpipe/feedpipe/shared/syncbuf"
	"github.com/feedpipe/feedpipe/shared/uploads"
)

var (
	benchLarge = flag.Bool("bench.large", false, "BenchmarkImport also imports a 1M-product delta")
	benchRSSMB = flag.Int("bench.rss-mb", 64, "uncompressed MiB of the delta BenchmarkImportPeakRSS imports")
)

// childEvent names, in a re-executed test binary, the file holding the SQS
// events (a JSON array) it handles, in order, as the import function (see
// runChild).
const childEvent = "FEEDPIPE_IMPORT_BENCH_EVENT"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEvent); path != "" {
		if err := importChild(path); err != nil {
			fmt.Fprintln(os.Stderr, "import child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childResult is what an import child measured of itself.
type childResult struct {
	CPU     time.Duration // user + system time of the handling, all threads
	Wall    time.Duration
	PeakKiB int64 // VmHWM when done
}

// importChild handles the SQS events in eventPath with the handler main
// builds from the environment, then writes a childResult next to the event
// file (".result"). The peak RSS is VmHWM, not getrusage's ru_maxrss: Go
// starts children with CLONE_VM, so the child's ru_maxrss inherits the
// parent's high-water mark at exec, and the parent here holds the embedded
// S3's objects.
func importChild(eventPath string) error {
	body, err := os.ReadFile(eventPath)
	if err != nil {
		return err
	}
	var evs []events.SQSEvent
	if err := json.Unmarshal(body, &evs); err != nil {
		return err
	}
	ctx := context.Background()
	h, err := handlerFromEnv(ctx)
	if err != nil {
		return err
	}
	cpu0, err := cpuTime()
	if err != nil {
		return err
	}
	start := time.Now()
	for _, ev := range evs {
		resp, err := h.Handle(ctx, ev)
		if err != nil {
			return err
		}
		if len(resp.BatchItemFailures) != 0 {
			return fmt.Errorf("batch item failures: %v", resp.BatchItemFailures)
		}
	}
	res := childResult{Wall: time.Since(start)}
	cpu1, err := cpuTime()
	if err != nil {
		return err
	}
	res.CPU = cpu1 - cpu0
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			if res.PeakKiB, err = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64); err != nil {
				return fmt.Errorf("VmHWM %q: %v", v, err)
			}
		}
	}
	if res.PeakKiB == 0 {
		return errors.New("no VmHWM in /proc/self/status")
	}
	out, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return os.WriteFile(eventPath+".result", out, 0o600)
}

// cpuTime is the process's user + system time so far.
func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// runChild re-executes this test binary as the import function on f's
// cloud (the handler main builds from its environment, nothing of the
// caller's AWS settings, tmp as its temporary directory) and has it handle
// evs in order.
func (f *fixture) runChild(b *testing.B, evs []events.SQSEvent, tmp string) childResult {
	b.Helper()
	dir := b.TempDir()
	body, err := json.Marshal(evs)
	if err != nil {
		b.Fatal(err)
	}
	eventPath := filepath.Join(dir, "events.json")
	if err := os.WriteFile(eventPath, body, 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + tmp, childEvent + "=" + eventPath}
	for k, v := range f.functionEnv(dir) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = io.Discard, out
	if err := cmd.Run(); err != nil {
		b.Fatalf("import child: %v\n%s", err, out.String())
	}
	raw, err := os.ReadFile(eventPath + ".result")
	if err != nil {
		b.Fatal(err)
	}
	var res childResult
	if err := json.Unmarshal(raw, &res); err != nil {
		b.Fatal(err)
	}
	return res
}

// functionEnv is the import function's environment on f's cloud: the
// variables main reads, and nothing of the caller's AWS setup.
func (f *fixture) functionEnv(dir string) map[string]string {
	lc := f.cloud
	ak, sk := lc.Credentials()
	none := filepath.Join(dir, "no-aws-config")
	return map[string]string{
		"AWS_ENDPOINT_URL": lc.Endpoint(), "AWS_REGION": lc.Region(),
		"AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": sk,
		"AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none, "AWS_EC2_METADATA_DISABLED": "true",
		layout.EnvStoreBucket: f.store, layout.EnvImportQueueURL: f.queue,
	}
}

// BenchmarkImport measures import throughput through the import function's
// handler, built as main builds it, on the embedded cloud in process: a
// zstd delta of n products of about 1 KB (feedbench.Write), into a new
// site's empty catalog ("new") and onto a catalog that already holds every
// id of the delta, each product changing ("update"; the catalog is imported
// untimed first). The handler runs in this process, so with -cpu 1 the
// embedded S3 shares its core. Sibling sub-benchmarks time, on the same
// file, the read+write ceiling (zstd decode, line split, id scan, one zstd
// encode at the fastest level) and its read-only part. All report
// products/s; run with -cpu 1 for per-core figures, and cmd/benchratio
// prints the ratios:
//
//	go test -run '^$' -bench 'Import$' -cpu 1 ./functions/import/ -bench.large |
//	  go run ./cmd/benchratio -metric products/s -base import -min 0.5 -against ceiling
func BenchmarkImport(b *testing.B) {
	sizes := []int{1_000, 100_000}
	if *benchLarge {
		sizes = append(sizes, 1_000_000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			for _, update := range []bool{false, true} {
				name := "new"
				if update {
					name = "update"
				}
				b.Run(name, func(b *testing.B) {
					var base []byte
					if update {
						var err error
						if base, _, err = feedbench.Zstd(n, uint64(n), 0); err != nil {
							b.Fatal(err)
						}
					}
					data, plain, err := feedbench.Zstd(n, uint64(n), 1)
					if err != nil {
						b.Fatal(err)
					}
					b.Run("import", func(b *testing.B) { benchImport(b, n, base, data, plain) })
					base = nil
					b.Run("ceiling", func(b *testing.B) { benchCeiling(b, n, data, plain, true) })
					b.Run("read", func(b *testing.B) { benchCeiling(b, n, data, plain, false) })
				})
			}
		})
	}
}

// benchImport times the import of data, onto a catalog holding base when
// base is not nil, in this process: the embedded S3 shares the import's
// core (with -cpu 1).
func benchImport(b *testing.B, n int, base, data []byte, plain int64) {
	f := newFixture(b)
	handle := f.benchHandler(b)
	b.SetBytes(plain)
	var requests int64 // S3 requests the timed imports made
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		siteName := fmt.Sprintf("bench-%d", i)
		if base != nil {
			rec := f.queued(siteName, layout.Zstd, base)
			handle(rec)
			f.assertImported(rec, n)
		}
		rec := f.queued(siteName, layout.Zstd, data)
		before, _ := f.cloud.Requests()
		b.StartTimer()
		handle(rec)
		b.StopTimer()
		after, _ := f.cloud.Requests()
		requests += after - before
		f.assertImported(rec, n)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "products/s")
	b.ReportMetric(float64(requests)/float64(b.N), "s3-requests/op")
	b.ReportMetric(float64(plain)/float64(len(data)), "zstd-ratio")
}

// benchHandler returns a function that imports one queued upload with the
// handler main builds, in this process.
func (f *fixture) benchHandler(b testing.TB) func(rec uploads.Record) {
	for k, v := range f.functionEnv(b.TempDir()) {
		b.Setenv(k, v)
	}
	h, err := handlerFromEnv(f.ctx)
	if err != nil {
		b.Fatal(err)
	}
	h.Logger = slog.New(slog.DiscardHandler)
	h.Metrics = metrics.New(io.Discard, metrics.Namespace, "import", time.Now)
	return func(rec uploads.Record) {
		msg := f.message(rec.Site, deltaBody(rec), 1)
		resp, err := h.Handle(f.ctx, events.SQSEvent{Records: []events.SQSMessage{msg}})
		if err != nil || len(resp.BatchItemFailures) != 0 {
			b.Fatalf("import: %v %v\n%s", err, resp.BatchItemFailures, f.logs.String())
		}
	}
}

// assertImported checks that rec was imported with all its n lines.
func (f *fixture) assertImported(rec uploads.Record, n int) {
	f.t.Helper()
	got, _, err := f.h.Uploads.Get(f.ctx, rec.Site, rec.Sequence)
	if err != nil {
		f.t.Fatal(err)
	}
	if got.State != uploads.Imported || got.Counts == nil || got.Counts.Lines != int64(n) || got.Counts.Rejected != 0 {
		f.t.Fatalf("upload %s/%d: %s (%s) counts %+v, want imported with %d lines", rec.Site, rec.Sequence, got.State, got.Reason, got.Counts, n)
	}
}

func benchCeiling(b *testing.B, n int, data []byte, plain int64, encode bool) {
	c, err := feedbench.NewCeiling()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.SetBytes(plain)
	for range b.N {
		lines, err := c.Run(bytes.NewReader(data), encode)
		if err != nil {
			b.Fatal(err)
		}
		if lines != n {
			b.Fatalf("%d lines, want %d", lines, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "products/s")
}

// BenchmarkImportPeakRSS imports a delta of -bench.rss-mb MiB of NDJSON
// (feedbench.Write, uploaded zstd-compressed as a client would) in a child
// process: this test binary re-executed to run the handler main builds,
// against the embedded cloud of this process, with the function's spill
// directory in a temporary directory. The delta is generated while it is
// streamed to the embedded S3 in multipart parts, never held whole. It
// reports the child's peak RSS (its VmHWM), the peak size of its temporary
// files (sampled) and its products per second of
// CPU time (user + system), the import's per-core throughput without the
// embedded S3's share.
//
//	go test -run '^$' -bench ImportPeakRSS -benchtime 1x ./functions/import/ -bench.rss-mb 1024
func BenchmarkImportPeakRSS(b *testing.B) {
	f := newFixture(b)
	sample := feedbench.Data(1000, 7)
	n := int((int64(*benchRSSMB)<<20)*1000/int64(len(sample))) + 1
	var plain, stored int64
	var peakKiB, peakDisk int64
	var elapsed, cpu time.Duration
	for i := range b.N {
		siteName := fmt.Sprintf("rss-%d", i)
		rec := f.queuedFrom(siteName, layout.Zstd, func(key string) (int64, error) {
			var err error
			plain, stored, err = f.streamUpload(key, n, 7)
			return stored, err
		})
		spill := filepath.Join(b.TempDir(), "tmp")
		if err := os.Mkdir(spill, 0o700); err != nil {
			b.Fatal(err)
		}
		evs := []events.SQSEvent{{Records: []events.SQSMessage{f.message(siteName, deltaBody(rec), 1)}}}
		stopDisk := sampleDisk(spill, &peakDisk)
		res := f.runChild(b, evs, spill)
		stopDisk()
		f.assertImported(rec, n)
		elapsed += res.Wall
		cpu += res.CPU
		peakKiB = max(peakKiB, res.PeakKiB)
		if left := dirSize(spill); left != 0 {
			b.Errorf("the import left %d bytes in its temporary directory", left)
		}
	}
	b.ReportMetric(float64(peakKiB)/1024, "peak-RSS-MiB")
	b.ReportMetric(float64(peakDisk)/(1<<20), "peak-tmp-MiB")
	b.ReportMetric(float64(plain)/(1<<20), "delta-MiB")
	b.ReportMetric(float64(stored)/(1<<20), "stored-MiB")
	b.ReportMetric(float64(n)*float64(b.N)/elapsed.Seconds(), "products/s")
	// Per core, without the embedded S3 (it runs in this process).
	b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds(), "products/cpu-s")
}

// streamUpload writes n lines (feedbench.Write) zstd-compressed to key in
// 16 MiB multipart parts, and returns the plain and the stored size.
func (f *fixture) streamUpload(key string, n int, seed uint64) (plain, stored int64, err error) {
	up, err := f.s3.CreateMultipartUpload(f.ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(f.store), Key: aws.String(key)})
	if err != nil {
		return 0, 0, err
	}
	pw := &partWriter{f: f, key: key, id: aws.ToString(up.UploadId)}
	enc, err := zstd.NewWriter(pw)
	if err != nil {
		return 0, 0, err
	}
	cw := &feedbench.CountingWriter{W: enc}
	if err := feedbench.Write(cw, n, seed); err != nil {
		return 0, 0, err
	}
	if err := enc.Close(); err != nil {
		return 0, 0, err
	}
	if err := pw.flush(); err != nil {
		return 0, 0, err
	}
	_, err = f.s3.CompleteMultipartUpload(f.ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(f.store), Key: aws.String(key),
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: pw.parts}})
	return cw.N, pw.size, err
}

// partWriter uploads what is written to it as parts of a multipart upload.
type partWriter struct {
	f     *fixture
	key   string
	id    string
	buf   bytes.Buffer
	parts []types.CompletedPart
	size  int64
}

const partSize = 16 << 20

func (w *partWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if w.buf.Len() >= partSize {
		if err := w.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (w *partWriter) flush() error {
	if w.buf.Len() == 0 {
		return nil
	}
	num := aws.Int32(int32(len(w.parts) + 1))
	out, err := w.f.s3.UploadPart(w.f.ctx, &s3.UploadPartInput{Bucket: aws.String(w.f.store), Key: aws.String(w.key), UploadId: aws.String(w.id),
		PartNumber: num, Body: bytes.NewReader(w.buf.Bytes())})
	if err != nil {
		return fmt.Errorf("upload part %d: %w", *num, err)
	}
	w.parts = append(w.parts, types.CompletedPart{ETag: out.ETag, PartNumber: num})
	w.size += int64(w.buf.Len())
	w.buf.Reset()
	return nil
}

// sampleDisk records the largest size of dir's files in *peak, every 50 ms,
// until the returned stop is called.
func sampleDisk(dir string, peak *int64) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			*peak = max(*peak, dirSize(dir))
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() { close(done); <-stopped }
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}
