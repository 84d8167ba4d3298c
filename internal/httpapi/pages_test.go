package httpapi_test

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/httpapi"
)

// pageWords is what a page says in one language: its heading (also the
// <title>) and a part of its sentence.
type pageWords struct{ heading, text string }

// pageCases are the end user's pages, each with its status and its words in
// every translated language. They are written out here rather than read from
// the locale files, so a changed text shows up in review.
var pageCases = []struct {
	kind   httpapi.PageKind
	status int
	words  map[string]pageWords
}{
	{httpapi.PageNotFound, http.StatusNotFound, map[string]pageWords{
		"en": {"Link not valid", "Please use the link in the most recent message."},
		"de": {"Link ungültig", "Bitte verwenden Sie den Link aus der neuesten Nachricht."},
	}},
	{httpapi.PageSuperseded, http.StatusGone, map[string]pageWords{
		"en": {"Link no longer valid", "This link has been replaced by a newer one."},
		"de": {"Link nicht mehr gültig", "Dieser Link wurde durch einen neueren ersetzt."},
	}},
	{httpapi.PageAlreadyConnected, http.StatusOK, map[string]pageWords{
		"en": {"Already connected", "There is nothing more to do."},
		"de": {"Bereits verbunden", "Sie müssen nichts weiter tun."},
	}},
	{httpapi.PageExpired, http.StatusOK, map[string]pageWords{
		"en": {"This link has expired", "A new link is on its way to you by email."},
		"de": {"Dieser Link ist abgelaufen", "Ein neuer Link ist per E-Mail zu Ihnen unterwegs."},
	}},
	{httpapi.PageConnected, http.StatusOK, map[string]pageWords{
		"en": {"Connected", "You can close this page."},
		"de": {"Verbunden", "Sie können diese Seite schließen."},
	}},
	{httpapi.PageCancelled, http.StatusOK, map[string]pageWords{
		"en": {"Cancelled", "The connection was not renewed."},
		"de": {"Abgebrochen", "Die Verbindung wurde nicht erneuert."},
	}},
	{httpapi.PageInvalidDone, http.StatusBadRequest, map[string]pageWords{
		"en": {"Invalid link", "This link is not valid."},
		"de": {"Ungültiger Link", "Dieser Link ist nicht gültig."},
	}},
	{httpapi.PageError, http.StatusInternalServerError, map[string]pageWords{
		"en": {"Something went wrong", "Please try again in a moment."},
		"de": {"Etwas ist schiefgelaufen", "Bitte versuchen Sie es in einem Moment erneut."},
	}},
	{httpapi.PageUnsubscribe, http.StatusOK, map[string]pageWords{
		"en": {"Stop the reminders?", "You will get no more reminders about connecting this device again."},
		"de": {"Keine Erinnerungen mehr?", "Sie erhalten dann keine Erinnerungen mehr, dieses Gerät wieder zu verbinden."},
	}},
	{httpapi.PageUnsubscribed, http.StatusOK, map[string]pageWords{
		"en": {"Reminders stopped", "You will get no more reminders about this device."},
		"de": {"Erinnerungen abbestellt", "Sie erhalten keine Erinnerungen mehr zu diesem Gerät."},
	}},
}

// pageLocales are the languages with a translation.
var pageLocales = []string{"en", "de"}

// pageAccept is an Accept-Language header per language that negotiates to it
// and not to the other one.
var pageAccept = map[string]string{"en": "fr,en-GB;q=0.9,de;q=0.5", "de": "fr,de-AT;q=0.9,en;q=0.5"}

var (
	pageLangRE    = regexp.MustCompile(`<html lang="([^"]*)">`)
	pageTitleRE   = regexp.MustCompile(`<title>([^<]*)</title>`)
	pageHeadingRE = regexp.MustCompile(`<h1>([^<]*)</h1>`)
)

// renderPage renders a page with httpapi's writePage, the request carrying
// acceptLanguage when it is not empty.
func renderPage(t *testing.T, status int, kind httpapi.PageKind, locale, acceptLanguage string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/r/some-token", nil)
	if acceptLanguage != "" {
		req.Header.Set("Accept-Language", acceptLanguage)
	}
	rec := httptest.NewRecorder()
	httpapi.WritePage(rec, req, status, kind, locale)
	return rec.Result()
}

// pageBody reads a rendered page: its lang attribute, <title>, heading and
// the whole (unescaped) HTML.
func pageBody(t *testing.T, resp *http.Response) (lang, title, heading, body string) {
	t.Helper()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	body = string(raw)
	for _, x := range []struct {
		re  *regexp.Regexp
		dst *string
	}{{pageLangRE, &lang}, {pageTitleRE, &title}, {pageHeadingRE, &heading}} {
		m := x.re.FindStringSubmatch(body)
		require.NotNil(t, m, "%s in %s", x.re, body)
		*x.dst = html.UnescapeString(m[1])
	}
	return lang, title, heading, html.UnescapeString(body)
}

// TestPageKindsAndLocales renders every page in every translated language,
// once by the session's locale and once by the browser's Accept-Language.
func TestPageKindsAndLocales(t *testing.T) {
	t.Parallel()
	// Every page kind has a case, and every case a text per language.
	var kinds []httpapi.PageKind
	for _, c := range pageCases {
		kinds = append(kinds, c.kind)
		require.Len(t, c.words, len(pageLocales), c.kind)
	}
	require.ElementsMatch(t, httpapi.PageKinds, kinds)

	for _, c := range pageCases {
		for _, locale := range pageLocales {
			want := c.words[locale]
			for _, how := range []struct{ name, session, accept string }{
				{"session", locale, ""},
				{"accept-language", "", pageAccept[locale]},
			} {
				t.Run(string(c.kind)+"/"+locale+"/"+how.name, func(t *testing.T) {
					resp := renderPage(t, c.status, c.kind, how.session, how.accept)
					require.Equal(t, c.status, resp.StatusCode)
					h := resp.Header
					require.Equal(t, "text/html; charset=utf-8", h.Get("Content-Type"))
					require.Equal(t, locale, h.Get("Content-Language"))
					require.Equal(t, "no-store", h.Get("Cache-Control"))
					require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
					require.Equal(t, "no-referrer", h.Get("Referrer-Policy"))
					lang, title, heading, body := pageBody(t, resp)
					requireStrictCSP(t, h.Get("Content-Security-Policy"), body)
					require.Equal(t, locale, lang)
					require.Equal(t, want.heading, title)
					require.Equal(t, want.heading, heading)
					require.Contains(t, body, want.text)
					require.NotContains(t, strings.ToLower(body), "<script")
					if locale != "en" {
						require.NotContains(t, body, c.words["en"].heading, "no English left on the %s page", locale)
					}
				})
			}
		}
	}
}

// TestPageLocaleChoice checks which language a page gets: the session's
// locale over the browser's, English for a locale without a translation.
func TestPageLocaleChoice(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, session, accept, want string
	}{
		{"session wins over the browser", "de", "en", "de"},
		{"English session, German browser", "en", "de", "en"},
		{"untranslated session locale", "sv", "de", "en"},
		{"no session, German browser", "", "de-AT,de;q=0.9,en;q=0.8", "de"},
		{"no session, no header", "", "", "en"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := renderPage(t, http.StatusNotFound, httpapi.PageNotFound, c.session, c.accept)
			lang, _, heading, _ := pageBody(t, resp)
			require.Equal(t, c.want, lang)
			require.Equal(t, c.want, resp.Header.Get("Content-Language"))
			require.Equal(t, pageCases[0].words[c.want].heading, heading)
		})
	}
}

// TestPageNegotiateLocale checks Accept-Language negotiation.
func TestPageNegotiateLocale(t *testing.T) {
	t.Parallel()
	for header, want := range map[string]string{
		"":                            "en",
		"de":                          "de",
		"de-AT":                       "de",
		"DE-at":                       "de",
		"de_CH":                       "de",
		"en-GB,de;q=0.9":              "en",
		"en;q=0.5, de;q=0.9":          "de",
		"de;q=0.8,en;q=0.8":           "de", // a tie: the earlier entry
		"fr-FR,fr;q=0.9,de;q=0.1":     "de", // the only translated one
		"fr, it;q=0.9":                "en", // nothing translated (it falls back)
		"sv":                          "en",
		"de;q=0, en;q=0.1":            "en", // q=0: not acceptable
		"de;q=0":                      "en",
		"*":                           "en",
		"*, de;q=0.5":                 "de",
		"de; q=0.7 , en ; q = 0.6":    "de",
		"de;q=abc,en;q=0.3":           "en", // a malformed weight
		"de;q=2,en;q=0.3":             "en",
		"de;level=1;q=0.9,en;q=0.8":   "de",
		",,;;q=,de":                   "de",
		"xx-invalid-tag-with-no-lang": "en",
	} {
		require.Equal(t, want, httpapi.NegotiateLocale(header), "Accept-Language: %q", header)
	}
}

var pageStyleRE = regexp.MustCompile(`(?s)<style>(.*?)</style>`)

// requireStrictCSP checks a page's Content-Security-Policy: nothing but its
// one <style> element, allowed by its hash (no 'unsafe-inline'), no script,
// no framing.
func requireStrictCSP(t *testing.T, csp, body string) {
	t.Helper()
	m := pageStyleRE.FindAllStringSubmatch(body, -1)
	require.Len(t, m, 1, "one <style> element")
	sum := sha256.Sum256([]byte(m[0][1]))
	require.Contains(t, csp, "default-src 'none'; style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	require.NotContains(t, csp, "unsafe-inline")
	require.NotContains(t, csp, "script-src")
	require.Contains(t, csp, "frame-ancestors 'none'")
	require.Contains(t, csp, "base-uri 'none'")
	require.NotContains(t, body, " style=", "no inline style attributes: the CSP would block them")
}
