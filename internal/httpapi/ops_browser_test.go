package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"image"
	"image/png"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/testdb"
)

// opsFlakyWorker fails a job's first attempt and completes every later one:
// a job inserted with MaxAttempts 1 ends discarded, and runs to completion
// once retried.
type opsFlakyWorker struct {
	river.WorkerDefaults[opsTestArgs]
}

func (opsFlakyWorker) Work(ctx context.Context, job *river.Job[opsTestArgs]) error {
	if job.Attempt == 1 {
		return errors.New("ops test: the first attempt fails")
	}
	return nil
}

// chromiumPath finds Debian's chromium. The browser test never skips: a
// machine without it fails, saying how to install it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: the ops page browser test drives Debian's headless chromium; " +
		"install it with `apt-get install -y --no-install-recommends chromium` (make test does this when apt-get is there: make deps)")
	return ""
}

// syncBuffer collects the browser's output for a failure message.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitJob waits for River's event of kind about job id.
func waitJob(t *testing.T, events <-chan *river.Event, id int64, kind river.EventKind) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Job.ID == id && ev.Kind == kind {
				return
			}
		case <-timeout:
			t.Fatalf("job %d: no %s event within 30s", id, kind)
		}
	}
}

// TestOpsPageInBrowser retries a failed job from the ops page in a real
// headless Chromium, sees River run it to completion, and checks a
// screenshot of the page.
func TestOpsPageInBrowser(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	ctx := context.Background()

	workers := river.NewWorkers()
	river.AddWorker(workers, &opsFlakyWorker{})
	b := opsSetup(t, testdb.New(t), &river.Config{
		Queues:            map[string]river.QueueConfig{"ops_test": {MaxWorkers: 2}},
		Workers:           workers,
		FetchCooldown:     20 * time.Millisecond,
		FetchPollInterval: 100 * time.Millisecond,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		TestOnly:          true,
	}, opsTokens())
	events, unsubscribe := b.river.Subscribe(river.EventKindJobFailed, river.EventKindJobCompleted)
	t.Cleanup(unsubscribe)
	require.NoError(t, b.river.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = b.river.Stop(stopCtx)
	})

	// The funnel's seed: two requests today and a link created for one.
	for range 2 {
		testdb.InsertJob(t, b.pool, deviceArgs(), nil, testdb.Job{State: rivertype.JobStateCompleted, Attempt: 1})
	}
	require.NoError(t, store.UpsertDevice(ctx, b.pool, reauth.Inverter, opsDeviceID, opsOrgID, opsUserID))
	_, err := store.CreateSession(ctx, b.pool, store.NewSession{
		DeviceKind: reauth.Inverter, DeviceID: opsDeviceID, PoderoSessionID: "5f1e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f",
		AuthenticationURL: "https://app.podero.com/connect/1", LinkNonce: []byte("n"), LinkHash: []byte("h"),
		Locale: "en", ExpiresAt: time.Now().Add(time.Hour),
	})
	require.NoError(t, err)

	id := b.insert(t, opsTestArgs{Note: "browser"}, &river.InsertOpts{Queue: "ops_test", MaxAttempts: 1})
	waitJob(t, events, id, river.EventKindJobFailed)
	require.Equal(t, "discarded", b.jobState(t, id))
	row := "#job-" + strconv.FormatInt(id, 10)

	bctx, browserLog := startBrowser(t, ctx, chromium, 1280, 800)
	step := func(name string, f func(ctx context.Context) error) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		if err := f(sctx); err != nil {
			t.Fatalf("%s: %v\nchromium output:\n%s", name, err, browserLog.String())
		}
	}

	// The browser signs in with Basic auth: the ops token as the password.
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("operator:"+opsToken))
	step("send credentials", func(ctx context.Context) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
			Headers: network.Headers{"Authorization": auth},
		})
		return err
	})

	step("open the failed jobs", func(ctx context.Context) error {
		resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(b.srv.URL+"/ops/jobs?state=discarded"))
		if err != nil {
			return err
		}
		require.Equal(t, int64(200), resp.Status)
		state, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(row+" td.state")))
		if err != nil {
			return err
		}
		require.Equal(t, "discarded", state)
		lastErr, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(row+" td.err")))
		if err != nil {
			return err
		}
		require.Contains(t, lastErr, "the first attempt fails")
		return nil
	})

	step("click retry", func(ctx context.Context) error {
		resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(row+` button[name="retry"]`)))
		if err != nil {
			return err
		}
		require.Equal(t, int64(200), resp.Status, "the POST redirected (303) to a page that loaded")
		require.Contains(t, resp.URL, "/ops/jobs?")
		require.Contains(t, resp.URL, "state=discarded", "back to the list the button was on")
		notice, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("p.notice")))
		if err != nil {
			return err
		}
		require.Contains(t, notice, "Job "+strconv.FormatInt(id, 10)+" retried")
		return nil
	})
	// The click went through River's JobRetry: the job leaves the failed
	// state and this time runs to completion.
	waitJob(t, events, id, river.EventKindJobCompleted)
	require.Equal(t, "completed", b.jobState(t, id))

	var shot []byte
	step("see it completed and take a screenshot", func(ctx context.Context) error {
		if err := chromedp.Do(ctx, chromedp.Navigate(b.srv.URL+"/ops/jobs?kind=ops_test_flaky")); err != nil {
			return err
		}
		state, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(row+" td.state")))
		if err != nil {
			return err
		}
		require.Equal(t, "completed", state)
		attempt, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(row+" td.n")))
		if err != nil {
			return err
		}
		require.Equal(t, "2/2", strings.TrimSpace(attempt), "a second attempt River granted on retry")
		shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		return err
	})

	// The overview draws the last 7 days of the funnel as SVG: axes, a
	// legend, and today's bars for the seeded requests and link.
	var chart []byte
	step("see the funnel chart", func(ctx context.Context) error {
		if err := chromedp.Do(ctx, chromedp.Navigate(b.srv.URL+"/ops")); err != nil {
			return err
		}
		days, err := chromedp.Run(ctx, chromedp.AttributesAll(chromedp.CSSAll("svg#funnel-chart g.day")))
		if err != nil {
			return err
		}
		require.Len(t, days, 7, "a group of bars a day")
		today := time.Now().UTC().Format("2006-01-02")
		require.Equal(t, today, days[6]["data-day"], "today last")
		bars, err := chromedp.Run(ctx, chromedp.AttributesAll(chromedp.CSSAll(`svg#funnel-chart g.day[data-day="`+today+`"] rect.bar`)))
		if err != nil {
			return err
		}
		got := map[string]string{}
		for _, bar := range bars {
			h, err := strconv.ParseFloat(bar["height"], 64)
			require.NoError(t, err)
			require.Greater(t, h, 0.0, "a visible bar")
			got[bar["class"]] = bar["data-count"]
		}
		require.Equal(t, map[string]string{"bar bar-requested": "2", "bar bar-link_created": "1"}, got)
		legend, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS("svg#funnel-chart g.legend")))
		if err != nil {
			return err
		}
		for _, name := range []string{"requested", "link created", "sent", "opened", "completed"} {
			require.Contains(t, legend, name)
		}
		ticks, err := chromedp.Run(ctx, chromedp.AttributesAll(chromedp.CSSAll("svg#funnel-chart g.y-axis text")))
		if err != nil {
			return err
		}
		require.GreaterOrEqual(t, len(ticks), 2, "a labelled y axis")
		chart, err = chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("svg#funnel-chart")))
		return err
	})
	chartImg, err := png.Decode(bytes.NewReader(chart))
	require.NoError(t, err)
	require.GreaterOrEqual(t, chartImg.Bounds().Dx(), 700, "drawn at its size")
	require.Greater(t, distinctColors(chartImg, 50), 5, "bars in the legend's colors")

	// The screenshot is a real, non-blank PNG of the page.
	require.True(t, bytes.HasPrefix(shot, []byte("\x89PNG\r\n\x1a\n")), "a PNG")
	require.Greater(t, len(shot), 5_000)
	require.Less(t, len(shot), 20<<20)
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err)
	require.GreaterOrEqual(t, img.Bounds().Dx(), 1000)
	require.GreaterOrEqual(t, img.Bounds().Dy(), 300)
	require.Greater(t, distinctColors(img, 50), 3, "the screenshot is not blank")
	file := filepath.Join(t.TempDir(), "ops-jobs.png")
	require.NoError(t, os.WriteFile(file, shot, 0o600))
	written, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Equal(t, shot, written)
	t.Logf("screenshot: %s (%d bytes, %dx%d)", file, len(shot), img.Bounds().Dx(), img.Bounds().Dy())
}

// distinctColors counts the colors of img, stopping at limit.
func distinctColors(img image.Image, limit int) int {
	seen := map[[4]uint32]bool{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y += 3 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 3 {
			r, g, b, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, b, a}] = true
			if len(seen) >= limit {
				return len(seen)
			}
		}
	}
	return len(seen)
}

// startBrowser starts headless Chromium with a fresh profile and only the
// flags this machine's closed network allows, and returns its context; the
// browser stops when the test ends. Each step should set its own timeout.
// The buffer collects the browser's output, for failure messages.
func startBrowser(t *testing.T, ctx context.Context, chromium string, width, height int) (context.Context, *syncBuffer) {
	t.Helper()
	browserLog := &syncBuffer{}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
		chromedp.CombinedOutput(browserLog),
	)
	t.Cleanup(cancelAlloc) // waits for the browser to exit, before the profile is removed
	bctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancelBrowser)
	// The first call starts the browser and binds it to bctx: no timeout here.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v\nchromium output:\n%s", err, browserLog.String())
	}
	return bctx, browserLog
}
