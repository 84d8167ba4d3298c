package httpapi_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/link"
)

// TestUnsubscribeInBrowser opens a reminder's opt-out URL in headless
// Chromium, in English and German, in the partner's brand: the page shows
// its button (screenshot), the click POSTs the form (which the pages' CSP
// allows: form-action 'self'), lands on the confirmation, and the
// session's pending reminder is cancelled. Like the other browser tests, it
// fails when chromium is missing.
func TestUnsubscribeInBrowser(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	dirs := []string{t.TempDir()}
	if d := os.Getenv("PAGES_SCREENSHOT_DIR"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		dirs = append(dirs, d)
	}
	bctx, browserLog := startBrowser(t, context.Background(), chromium, 800, 600)

	for _, c := range []struct{ locale, heading, button, done string }{
		{"en", "Stop the reminders?", "Stop reminders", "Reminders stopped"},
		{"de", "Keine Erinnerungen mehr?", "Erinnerungen abbestellen", "Erinnerungen abbestellt"},
	} {
		t.Run(c.locale, func(t *testing.T) {
			b := setup(t, httpapi.Config{Brand: browserBrand})
			o := b.optOutSession(t, c.locale)
			ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
			defer cancel()
			ctx, cancelTab := chromedp.NewContext(ctx)
			defer cancelTab()
			fail := func(step string, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v\nchromium output:\n%s", step, err, browserLog.String())
				}
			}

			resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(b.srv.URL+link.UnsubscribePath+o.token))
			fail("open the opt-out page", err)
			require.Equal(t, int64(200), resp.Status)
			heading, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
			fail("read the heading", err)
			require.Equal(t, c.heading, heading)
			label, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("form button.button")))
			fail("read the button", err)
			require.Equal(t, c.button, label)
			shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			fail("screenshot", err)
			checkPageScreenshot(t, shot)
			require.Greater(t, brandPixels(t, shot), 500, "the button is in the brand colour")
			for _, dir := range dirs {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "page-unsubscribe-form-"+c.locale+".png"), shot, 0o600))
			}
			job, stopped, _ := b.optOutState(t, o)
			require.Equal(t, "scheduled", job, "opening the page stops nothing")
			require.False(t, stopped)

			resp, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("form button.button")))
			fail("click the button", err)
			require.Equal(t, int64(200), resp.Status)
			heading, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
			fail("read the confirmation", err)
			require.Equal(t, c.done, heading)
			job, stopped, state := b.optOutState(t, o)
			require.Equal(t, "cancelled", job)
			require.True(t, stopped)
			require.Equal(t, "open", state)
		})
	}
}
