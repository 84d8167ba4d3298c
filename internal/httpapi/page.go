package httpapi

import (
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"path"
	"strings"

	"github.com/reauth/reauth"
)

// pageKind names one of the short HTML pages the end user's browser gets
// under /r/... when the request ends on the service. Its value is the key of
// the page's texts in pagetemplates/<locale>.json.
type pageKind string

// The end user's pages, with the status each is served with.
const (
	pageNotFound         pageKind = "not_found"         // 404: unknown or malformed link token
	pageSuperseded       pageKind = "superseded"        // 410: replaced by a newer link, no current session
	pageAlreadyConnected pageKind = "already_connected" // 200: the session was completed before
	pageExpired          pageKind = "expired"           // 200: a new link is on its way by email
	pageConnected        pageKind = "connected"         // 200: /done success without a partner page
	pageCancelled        pageKind = "cancelled"         // 200: /done cancel without a partner page
	pageInvalidDone      pageKind = "invalid_done"      // 400: /done without a valid result
	pageError            pageKind = "error"             // 500: anything unexpected
)

// pageKinds lists every page kind; each locale file has texts for all of them.
var pageKinds = []pageKind{
	pageNotFound, pageSuperseded, pageAlreadyConnected, pageExpired,
	pageConnected, pageCancelled, pageInvalidDone, pageError,
}

// defaultPageLocale is the language of a page when no translation fits.
const defaultPageLocale = "en"

// pageText is what a page says: Title is both the <title> and the heading.
type pageText struct {
	Title string `json:"title"`
	Text  string `json:"text"`
}

//go:embed pagetemplates/page.html pagetemplates/*.json
var pageFS embed.FS

var pageTmpl = template.Must(template.ParseFS(pageFS, "pagetemplates/page.html"))

// pageTexts holds the texts by locale, then page kind: one file per locale,
// pagetemplates/<locale>.json, where <locale> is one of reauth.Locales. A
// locale without a file falls back to English.
var pageTexts = mustLoadPageTexts()

// mustLoadPageTexts reads the embedded locale files and panics unless each
// is for a known locale and has a title and a text for every page kind.
func mustLoadPageTexts() map[string]map[pageKind]pageText {
	files, err := pageFS.ReadDir("pagetemplates")
	if err != nil {
		panic(err)
	}
	texts := map[string]map[pageKind]pageText{}
	for _, f := range files {
		locale, ok := strings.CutSuffix(f.Name(), ".json")
		if !ok {
			continue
		}
		if !reauth.ValidLocale(locale) {
			panic(fmt.Sprintf("pagetemplates/%s: %q is not one of reauth.Locales", f.Name(), locale))
		}
		b, err := pageFS.ReadFile(path.Join("pagetemplates", f.Name()))
		if err != nil {
			panic(err)
		}
		var m map[pageKind]pageText
		if err := json.Unmarshal(b, &m); err != nil {
			panic(fmt.Sprintf("pagetemplates/%s: %v", f.Name(), err))
		}
		if len(m) != len(pageKinds) {
			panic(fmt.Sprintf("pagetemplates/%s: %d pages, want %d", f.Name(), len(m), len(pageKinds)))
		}
		for _, k := range pageKinds {
			if m[k].Title == "" || m[k].Text == "" {
				panic(fmt.Sprintf("pagetemplates/%s: page %q needs a title and a text", f.Name(), k))
			}
		}
		texts[locale] = m
	}
	if texts[defaultPageLocale] == nil {
		panic("pagetemplates: no " + defaultPageLocale + ".json")
	}
	return texts
}

// writePage answers the end user's browser with a short HTML page of the
// given kind. locale is the session's locale, or "" when there is no session:
// then the language comes from the request's Accept-Language header. A
// language without a translation gets English.
func writePage(w http.ResponseWriter, r *http.Request, status int, page pageKind, locale string) {
	lang := pageLocale(r, locale)
	text, ok := pageTexts[lang][page]
	if !ok {
		text = pageTexts[lang][pageError]
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", lang)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, struct {
		Lang string
		pageText
	}{lang, text})
}
