package httpapi_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/httpapi"
)

// TestPagesInBrowser loads every end user's page in English and German in a
// real headless Chromium, reads what it shows, and checks a screenshot of
// each. The screenshots go to t.TempDir() and, when PAGES_SCREENSHOT_DIR is
// set, there as well for a human to look at. Like the ops page browser test,
// it fails when chromium is missing.
func TestPagesInBrowser(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)

	// /{locale}/{kind} renders that page with the session locale given.
	status := map[httpapi.PageKind]int{}
	for _, c := range pageCases {
		status[c.kind] = c.status
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		locale, kind, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		st, ok := status[httpapi.PageKind(kind)]
		if !ok {
			http.NotFound(w, r)
			return
		}
		httpapi.WritePage(w, r, st, httpapi.PageKind(kind), locale)
	}))
	t.Cleanup(srv.Close)

	dirs := []string{t.TempDir()}
	if d := os.Getenv("PAGES_SCREENSHOT_DIR"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		dirs = append(dirs, d)
	}

	bctx, browserLog := startBrowser(t, context.Background(), chromium, 800, 600)

	for _, c := range pageCases {
		for _, locale := range pageLocales {
			want := c.words[locale]
			name := "page-" + string(c.kind) + "-" + locale
			t.Run(name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
				defer cancel()
				fail := func(step string, err error) {
					t.Helper()
					if err != nil {
						t.Fatalf("%s: %v\nchromium output:\n%s", step, err, browserLog.String())
					}
				}

				resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(srv.URL+"/"+locale+"/"+string(c.kind)))
				fail("open "+name, err)
				require.Equal(t, int64(c.status), resp.Status)
				require.Equal(t, "text/html", resp.MimeType)

				lang, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.lang`))
				fail("read lang", err)
				require.Equal(t, locale, lang)
				title, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.title`))
				fail("read title", err)
				require.Equal(t, want.heading, title)
				heading, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("h1").innerText`))
				fail("read heading", err)
				require.Equal(t, want.heading, heading)
				text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
				fail("read text", err)
				require.Contains(t, text, want.heading)
				require.Contains(t, text, want.text)
				scripts, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.scripts.length`))
				fail("count scripts", err)
				require.Zero(t, scripts)

				shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
				fail("screenshot", err)
				checkPageScreenshot(t, shot)
				for _, dir := range dirs {
					require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), shot, 0o600))
				}
				t.Logf("screenshot: %s", filepath.Join(dirs[len(dirs)-1], name+".png"))
			})
		}
	}
}

// checkPageScreenshot asserts that shot is a PNG of a plausible size that is
// not blank: several colours, and dark pixels of text where the heading is.
func checkPageScreenshot(t *testing.T, shot []byte) {
	t.Helper()
	require.True(t, bytes.HasPrefix(shot, []byte("\x89PNG\r\n\x1a\n")), "a PNG")
	cfg, format, err := image.DecodeConfig(bytes.NewReader(shot))
	require.NoError(t, err)
	require.Equal(t, "png", format)
	require.GreaterOrEqual(t, cfg.Width, 400)
	require.LessOrEqual(t, cfg.Width, 4000)
	require.GreaterOrEqual(t, cfg.Height, 200)
	require.LessOrEqual(t, cfg.Height, 4000)
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err)
	require.Greater(t, distinctColors(img, 50), 3, "the screenshot is not blank")

	// The text is #222 on white: dark pixels in the top part, where the
	// heading and sentence are (4rem margin, 32rem wide, centred).
	b := img.Bounds()
	dark := 0
	for y := b.Min.Y; y < b.Min.Y+min(b.Dy(), 250); y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0x6000 && g < 0x6000 && bl < 0x6000 {
				dark++
			}
		}
	}
	require.Greater(t, dark, 200, "dark text pixels at the top of the page")
}
