package httpapi_test

import (
	"bytes"
	"context"
	"image/png"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/testdb"
)

// TestRiverUIInBrowser signs in to River UI in a real headless Chromium as
// an operator does (answering the browser's password prompt with the ops
// token), finds a failed job in its job list, retries it from the job's
// page, sees the change in Postgres, and checks a screenshot.
func TestRiverUIInBrowser(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	ctx := context.Background()

	b := opsSetup(t, testdb.New(t), nil, riverUITokens())
	id := b.discarded(t, opsTestArgs{Note: "browser"}, nil, "the only attempt failed")
	other := b.discarded(t, opsTestArgs{Note: "left alone"}, nil, "boom")
	jobPath := "/riverui/jobs/" + strconv.FormatInt(id, 10)

	bctx, browserLog := startBrowser(t, ctx, chromium, 1280, 900)
	step := func(name string, f func(ctx context.Context) error) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 15*time.Second)
		defer cancel()
		if err := f(sctx); err != nil {
			t.Fatalf("%s: %v\nchromium output:\n%s", name, err, browserLog.String())
		}
	}

	// The browser's password prompt, answered as the operator would: any
	// user name, the ops token as the password. Every other request goes on.
	// Script errors and the browser's own complaints (a Content-Security-
	// Policy violation is one) are collected.
	var (
		prompts  atomic.Int32
		mu       sync.Mutex
		problems []string
	)
	complain := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, s)
	}
	authRequired := chromedp.Events(bctx, fetch.AuthRequired)
	paused := chromedp.Events(bctx, fetch.RequestPaused)
	exceptions := chromedp.Events(bctx, runtime.ExceptionThrown)
	logged := chromedp.Events(bctx, cdplog.EntryAdded)
	go func() {
		for ev, err := range authRequired {
			if err != nil {
				return
			}
			prompts.Add(1)
			_, _ = chromedp.Call(bctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{
					Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: "operator", Password: opsToken,
				}})
		}
	}()
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(bctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			complain("exception: " + ev.ExceptionDetails.Text)
		}
	}()
	go func() {
		for ev, err := range logged {
			if err != nil {
				return
			}
			// The first request of each page gets 401 before the prompt: the network says so.
			if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
				complain(string(ev.Entry.Source) + ": " + ev.Entry.Text)
			}
		}
	}()
	step("answer the password prompt", func(ctx context.Context) error {
		if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
			return err
		}
		if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: new(true)})
		return err
	})

	step("find the failed job in River UI's job list", func(ctx context.Context) error {
		resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(b.srv.URL+"/riverui/jobs?state=discarded"))
		if err != nil {
			return err
		}
		require.Equal(t, int64(200), resp.Status)
		require.Positive(t, prompts.Load(), "the browser asked for the password")
		link := chromedp.CSS(`a[href="` + jobPath + `"]`)
		if err := chromedp.Do(ctx, chromedp.WaitVisible(link)); err != nil {
			return err
		}
		kind, err := chromedp.Run(ctx, chromedp.Text(link))
		if err != nil {
			return err
		}
		require.Equal(t, "ops_test_flaky", strings.TrimSpace(kind))
		return chromedp.Do(ctx, chromedp.Click(link))
	})

	step("retry it from its page", func(ctx context.Context) error {
		retry := `//button[normalize-space(.)="Retry"]`
		if err := chromedp.Do(ctx,
			chromedp.WaitVisible(`//*[contains(text(), "the only attempt failed")]`),
			chromedp.WaitEnabled(retry),
			chromedp.Click(retry),
			// River UI says so...
			chromedp.WaitVisible(`//*[contains(text(), "Job enqueued for retry")]`),
		); err != nil {
			return err
		}
		// ...and Postgres has it: the job is available again.
		for b.jobState(t, id) != "available" {
			if err := ctx.Err(); err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
		return nil
	})
	require.Equal(t, "discarded", b.jobState(t, other), "only the job retried")

	var shot []byte
	step("see it available and take a screenshot", func(ctx context.Context) error {
		if err := chromedp.Do(ctx, chromedp.WaitVisible(`//dt[normalize-space(.)="State"]/following-sibling::dd[1][contains(., "Available")]`)); err != nil {
			return err
		}
		var err error
		shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		return err
	})

	mu.Lock()
	require.Empty(t, problems, "no script errors and no Content-Security-Policy violations")
	mu.Unlock()

	require.True(t, bytes.HasPrefix(shot, []byte("\x89PNG\r\n\x1a\n")), "a PNG")
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err)
	require.GreaterOrEqual(t, img.Bounds().Dx(), 1000)
	require.GreaterOrEqual(t, img.Bounds().Dy(), 300)
	require.Greater(t, distinctColors(img, 50), 3, "the screenshot is not blank")
	t.Logf("screenshot: %d bytes, %dx%d", len(shot), img.Bounds().Dx(), img.Bounds().Dy())
}
