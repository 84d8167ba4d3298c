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

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/notify"
)

// TestPagesInBrowser loads every end user's page in English and German in a
// real headless Chromium, in the partner's brand (browserBrand), reads what
// it shows, and checks a screenshot of each (and of one at a phone's
// width). The screenshots go to t.TempDir() and, when PAGES_SCREENSHOT_DIR is
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
	writeBranded := httpapi.BrandedPages(browserBrand)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		locale, kind, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		st, ok := status[httpapi.PageKind(kind)]
		if !ok {
			http.NotFound(w, r)
			return
		}
		writeBranded(w, r, st, httpapi.PageKind(kind), locale, browserBack)
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
				require.Contains(t, text, browserBrand.Name)
				require.Contains(t, text, browserBrand.SupportEmail)
				href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("a.button").href`))
				fail("read the button", err)
				require.Equal(t, browserBack, href)
				// The CSP lets the style sheet in: the card is white on grey.
				bg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector(".card")).backgroundColor`))
				fail("read the card's style", err)
				require.Equal(t, "rgb(255, 255, 255)", bg)
				scripts, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.scripts.length`))
				fail("count scripts", err)
				require.Zero(t, scripts)

				shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
				fail("screenshot", err)
				checkPageScreenshot(t, shot)
				require.Greater(t, brandPixels(t, shot), 500, "the brand colour (card edge, icon, button) is on the page")
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

// browserBrand is the brand of the browser tests' pages and email; no logo,
// as an https logo would need a TLS server the browser trusts (the logo's
// markup is in TestPagesBrand).
var browserBrand = notify.Brand{
	Name:         "Stadtwerke Musterstadt",
	Color:        "#0b6e4f",
	SupportURL:   "https://example.com/help",
	SupportEmail: "hilfe@example.com",
}

// browserBack is the partner's page the pages' button leads back to.
const browserBack = "https://partner.example.com/app"

// brandPixels counts the pixels of browserBrand's colour in a screenshot.
func brandPixels(t *testing.T, shot []byte) int {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err)
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 == 0x0b && g>>8 == 0x6e && bl>>8 == 0x4f {
				n++
			}
		}
	}
	return n
}

// TestEmailAndPhonePageInBrowser renders a branded reminder email in English
// and German as notify renders it, opens its HTML in headless Chromium from
// a file, and checks its screenshot: the brand colour on the button, the
// text readable, no more than 600 px of content width. It also loads one
// page at a phone's width, where the button spans the card.
func TestEmailAndPhonePageInBrowser(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	r, err := notify.NewBrandedRenderer("", browserBrand)
	require.NoError(t, err)
	dir := t.TempDir()
	dirs := []string{dir}
	if d := os.Getenv("PAGES_SCREENSHOT_DIR"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		dirs = append(dirs, d)
	}
	bctx, browserLog := startBrowser(t, context.Background(), chromium, 800, 600)
	fail := func(t *testing.T, step string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v\nchromium output:\n%s", step, err, browserLog.String())
		}
	}
	for _, locale := range pageLocales {
		t.Run("email-"+locale, func(t *testing.T) {
			out, err := r.Render(notify.Message{Locale: locale, DeviceKind: reauth.Inverter, Manufacturer: "SMA", Model: "Sunny Boy 5.0",
				Link: "https://reauth.example.com/r/abc", Step: 1, ExpiresAt: time.Date(2030, 3, 4, 5, 6, 0, 0, time.UTC)})
			require.NoError(t, err)
			file := filepath.Join(dir, "email-"+locale+".html")
			require.NoError(t, os.WriteFile(file, []byte(out.HTML), 0o600))
			ctx, cancel := context.WithTimeout(bctx, 20*time.Second)
			defer cancel()
			_, err = chromedp.Run(ctx, chromedp.NavigateResponse("file://"+file))
			fail(t, "open the email", err)
			text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
			fail(t, "read text", err)
			require.Contains(t, text, "SMA Sunny Boy 5.0")
			require.Contains(t, text, "hilfe@example.com")
			require.Contains(t, text, browserBrand.Name)
			width, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelector("table table").getBoundingClientRect().width`))
			fail(t, "measure the content", err)
			require.LessOrEqual(t, width, 600.0)
			shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			fail(t, "screenshot", err)
			checkPageScreenshot(t, shot)
			require.Greater(t, brandPixels(t, shot), 2000, "the button is in the brand colour")
			for _, d := range dirs {
				require.NoError(t, os.WriteFile(filepath.Join(d, "email-"+locale+".png"), shot, 0o600))
			}
		})
	}

	t.Run("phone", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			httpapi.BrandedPages(browserBrand)(w, r, http.StatusOK, httpapi.PageExpired, "de", browserBack)
		}))
		t.Cleanup(srv.Close)
		ctx, cancel := context.WithTimeout(bctx, 20*time.Second)
		defer cancel()
		_, err := chromedp.Run(ctx, chromedp.EmulateViewport(375, 700, chromedp.EmulateMobile))
		fail(t, "emulate a phone", err)
		_, err = chromedp.Run(ctx, chromedp.NavigateResponse(srv.URL))
		fail(t, "open the page", err)
		widths, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`[document.querySelector("a.button").getBoundingClientRect().width, document.querySelector(".card").clientWidth, document.documentElement.scrollWidth]`))
		fail(t, "measure", err)
		require.InDelta(t, widths[1]-2*18, widths[0], 2, "the button spans the card on a phone")
		require.LessOrEqual(t, widths[2], 375.0, "nothing wider than the screen")
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		fail(t, "screenshot", err)
		require.Greater(t, distinctColors(mustPNG(t, shot), 50), 3)
		for _, d := range dirs {
			require.NoError(t, os.WriteFile(filepath.Join(d, "page-expired-de-phone.png"), shot, 0o600))
		}
	})
}

func mustPNG(t *testing.T, shot []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err)
	return img
}
