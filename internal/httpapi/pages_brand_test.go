package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/hostlist"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/store"
)

var testBrand = notify.Brand{
	Name:         "Stadtwerke Musterstadt",
	LogoURL:      "https://cdn.example.com/brand/logo.png",
	Color:        "#0b6e4f",
	SupportURL:   "https://example.com/help",
	SupportEmail: "hilfe@example.com",
}

// TestPagesBrand renders every page in the brand: the logo, the colour in
// the style sheet, the button back to the partner, the support footer; and
// a CSP that lets the logo's origin in and nothing else.
func TestPagesBrand(t *testing.T) {
	t.Parallel()
	write := httpapi.BrandedPages(testBrand)
	back := map[string]string{"en": "Back to Stadtwerke Musterstadt", "de": "Zurück zu Stadtwerke Musterstadt"}
	support := map[string]string{"en": "Help and support", "de": "Hilfe und Kontakt"}
	for _, kind := range httpapi.PageKinds {
		for _, locale := range pageLocales {
			t.Run(string(kind)+"/"+locale, func(t *testing.T) {
				rec := httptest.NewRecorder()
				write(rec, httptest.NewRequest(http.MethodGet, "/r/tok", nil), http.StatusOK, kind, locale, "https://partner.example.com/app")
				resp := rec.Result()
				_, _, _, body := pageBody(t, resp)
				csp := resp.Header.Get("Content-Security-Policy")
				requireStrictCSP(t, csp, body)
				require.Contains(t, csp, "img-src https://cdn.example.com;")
				require.Contains(t, body, `<img src="https://cdn.example.com/brand/logo.png" alt="Stadtwerke Musterstadt">`)
				require.Contains(t, body, "border-top:5px solid #0b6e4f")
				require.Contains(t, body, `href="https://partner.example.com/app">`+back[locale]+`</a>`)
				require.Contains(t, body, `<a href="mailto:hilfe@example.com">hilfe@example.com</a>`)
				require.Contains(t, body, `<a href="https://example.com/help">`)
				require.NotContains(t, strings.ToLower(body), "<script")

				// Without a partner page the button leads to the support page.
				rec = httptest.NewRecorder()
				write(rec, httptest.NewRequest(http.MethodGet, "/r/tok", nil), http.StatusOK, kind, locale, "")
				_, _, _, body = pageBody(t, rec.Result())
				require.Contains(t, body, ` href="https://example.com/help">`+support[locale]+`</a>`)
			})
		}
	}

	t.Run("unbranded", func(t *testing.T) {
		t.Parallel()
		resp := renderPage(t, http.StatusOK, httpapi.PageConnected, "en", "")
		_, _, _, body := pageBody(t, resp)
		require.NotContains(t, body, "<img")
		require.NotContains(t, body, "<footer")
		require.NotContains(t, body, `class="button`, "no partner page and no support page: no button")
		require.NotContains(t, resp.Header.Get("Content-Security-Policy"), "img-src")
		require.Contains(t, body, "border-top:5px solid "+notify.BrandColorDefault)
	})

	t.Run("name without logo, light colour", func(t *testing.T) {
		t.Parallel()
		rec := httptest.NewRecorder()
		httpapi.BrandedPages(notify.Brand{Name: "Acme", Color: "#ffd500"})(rec, httptest.NewRequest(http.MethodGet, "/", nil), http.StatusOK, httpapi.PageCancelled, "de", "https://p.example/")
		_, _, _, body := pageBody(t, rec.Result())
		require.Contains(t, body, `<div class="brand">Acme</div>`)
		require.Contains(t, body, "background:#ffd500;color:#111111", "dark text on a light button")
		require.Contains(t, body, ">Zurück zu Acme</a>")
	})
}

// TestPageBackURL checks where a page's button leads: the request's page
// while its host is allowed, else the configured one; the success page only
// after all went well, the cancel page after anything else.
func TestPageBackURL(t *testing.T) {
	t.Parallel()
	hosts, err := hostlist.Parse([]string{"shop.example.com"})
	require.NoError(t, err)
	cfg := httpapi.Config{SuccessURL: "https://partner.example/ok", CancelURL: "https://partner.example/cancel", RedirectHosts: hosts}
	own := &store.Session{SuccessURL: "https://shop.example.com/ok", CancelURL: "https://shop.example.com/cancel"}
	foreign := &store.Session{SuccessURL: "https://evil.example/ok", CancelURL: "https://evil.example/cancel"}
	for _, c := range []struct {
		page httpapi.PageKind
		sess *store.Session
		cfg  httpapi.Config
		want string
	}{
		{httpapi.PageAlreadyConnected, own, cfg, "https://shop.example.com/ok"},
		{httpapi.PageConnected, nil, cfg, "https://partner.example/ok"},
		{httpapi.PageExpired, own, cfg, "https://shop.example.com/cancel"},
		{httpapi.PageNotFound, nil, cfg, "https://partner.example/cancel"},
		{httpapi.PageSuperseded, foreign, cfg, "https://partner.example/cancel"},
		{httpapi.PageAlreadyConnected, foreign, cfg, "https://partner.example/ok"},
		{httpapi.PageError, nil, httpapi.Config{SuccessURL: "https://partner.example/ok"}, ""},
		{httpapi.PageConnected, nil, httpapi.Config{CancelURL: "https://partner.example/cancel"}, ""},
	} {
		require.Equal(t, c.want, httpapi.BackURL(c.cfg, c.page, c.sess), "%s %+v", c.page, c.sess)
	}
}
