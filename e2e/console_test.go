package e2e

import (
	"bytes"
	"context"
	"flag"
	"image"
	"image/png"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/feedpipe/feedpipe/shared/site"
)

var consoleScreenshot = flag.String("console.screenshot", "", "save the console's full-page screenshot (PNG) to this path")

// chromium finds the browser, or skips the test — unless
// FEEDPIPE_REQUIRE_CHROMIUM=1 (make test-console, make check), where a
// missing browser is a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("FEEDPIPE_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("no chromium on PATH (Debian: apt-get install -y chromium); FEEDPIPE_REQUIRE_CHROMIUM=1 requires it")
	}
	t.Skip("no chromium on PATH: the console's browser test runs in make test-console (part of make check)")
	return ""
}

// TestConsoleInChromium opens the console of a running stack in headless
// Chromium: the sites, an upload's line errors, the queues and alarms
// render, Sync now runs the sync, and a full-page screenshot is a real
// picture.
func TestConsoleInChromium(t *testing.T) {
	bin := chromium(t)
	s := start(t, map[string]string{"AllowLoopbackHttp": "true"})
	hook, hookURL := newReceiver(t, 0)
	ctx := context.Background()
	s.setDestinations(site.Destination{Name: "hook", Type: "webhook", URL: hookURL, Secrets: []string{"s1"}})
	a, _ := upsert("sku-1", 1)
	b, _ := upsert("sku-2", 1)
	s.apply(a, b)
	bad := s.send("delta", "{not json\n", nil)
	if r := s.waitTerminal(bad, time.Minute); r.State != "rejected" {
		t.Fatalf("the bad delta: %+v", r)
	}
	s.waitDirty()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	browser, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()

	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}
	if err := chromedp.Do(browser,
		chromedp.Navigate(s.api+"/_console"),
		chromedp.WaitVisible(chromedp.CSS(`tr.site-row[data-site="shop"]`)),
	); err != nil {
		t.Fatalf("the overview in chromium: %v", err)
	}
	sites, queues, alarmsText := text("#sites"), text("#queues"), text("#alarms")
	for _, want := range []string{"shop", "· 2 products", "importing", "hook", "rejected"} {
		if !strings.Contains(sites, want) {
			t.Errorf("the sites section lacks %q:\n%s", want, sites)
		}
	}
	for _, want := range []string{"CopyQueue", "ImportQueue", "SyncQueue"} {
		if !strings.Contains(queues, want) {
			t.Errorf("the queues section lacks %q:\n%s", want, queues)
		}
	}
	if !strings.Contains(alarmsText, "SitesHaltedAlarm") || !strings.Contains(alarmsText, "CopyQueueAgeAlarm") {
		t.Errorf("the alarms section lacks the template's alarms:\n%s", alarmsText)
	}

	if err := chromedp.Do(browser,
		chromedp.Navigate(s.api+"/_console/sites/shop"),
		chromedp.WaitVisible(chromedp.CSS(`li.line-error`)),
	); err != nil {
		t.Fatalf("the site page in chromium: %v", err)
	}
	if uploads := text("#uploads"); !strings.Contains(uploads, "line 1: bad_json") || !strings.Contains(uploads, "imported") {
		t.Errorf("the site page lacks the line error or the imported upload:\n%s", uploads)
	}

	if err := chromedp.Do(browser,
		chromedp.Navigate(s.api+"/_console"),
		chromedp.WaitVisible(chromedp.ID("sync-now")),
		chromedp.Click(chromedp.ID("sync-now")),
		chromedp.WaitVisible(chromedp.ID("notice")),
	); err != nil {
		t.Fatalf("Sync now in chromium: %v", err)
	}
	if notice := text("#notice"); !strings.Contains(notice, "Sync ran") {
		t.Errorf("after Sync now: %q", notice)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if n, _ := hook.count(); n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Sync now did not deliver the catalog to the webhook")
		}
	}

	if s.clock != nil { // let the alarms evaluate once, so the picture shows their states
		s.waitAlarm("CopyQueueAgeAlarm", "OK", time.Minute)
	}
	if err := chromedp.Do(browser, chromedp.Navigate(s.api+"/_console"), chromedp.WaitVisible(chromedp.CSS(`tr.site-row`))); err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 400 {
		t.Errorf("screenshot is %v, want at least 800×400", b.Size())
	}
	if n := colours(img, 64); n < 8 {
		t.Errorf("the screenshot has %d colours: blank?", n)
	}
	if *consoleScreenshot != "" {
		if err := os.WriteFile(*consoleScreenshot, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// colours counts distinct colours up to limit.
func colours(img image.Image, limit int) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
			if len(seen) >= limit {
				return len(seen)
			}
		}
	}
	return len(seen)
}
