package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/store"
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
	pageUnsubscribe      pageKind = "unsubscribe"       // 200: GET /u/{token}, the reminder opt-out's button (unsubscribe.go)
	pageUnsubscribed     pageKind = "unsubscribed"      // 200: the reminders are stopped
)

// pageKinds lists every page kind; each locale file has texts for all of them.
var pageKinds = []pageKind{
	pageNotFound, pageSuperseded, pageAlreadyConnected, pageExpired,
	pageConnected, pageCancelled, pageInvalidDone, pageError,
	pageUnsubscribe, pageUnsubscribed,
}

// defaultPageLocale is the language of a page when no translation fits.
const defaultPageLocale = "en"

// layoutKey is the entry of a locale file that holds the texts around every
// page (layoutText) rather than one page's.
const layoutKey = "layout"

// pageText is what a page says: Title is both the <title> and the heading.
type pageText struct {
	Title string `json:"title"`
	Text  string `json:"text"`
	// Button labels a page's form button (the opt-out's); "" for most.
	Button string `json:"button,omitempty"`
}

// layoutText is what every page says around its own text: the button back
// to the partner ("{brand}" stands for BRAND_NAME; BackUnbranded without
// one), the button to SUPPORT_URL when there is no partner page, and the
// footer with the support contact.
type layoutText struct {
	Back          string `json:"back"`
	BackUnbranded string `json:"back_unbranded"`
	Support       string `json:"support"`
	Questions     string `json:"questions"`
	Or            string `json:"or"`
	HelpPage      string `json:"help_page"`
}

// localeTexts is one locale file.
type localeTexts struct {
	pages  map[pageKind]pageText
	layout layoutText
}

//go:embed pagetemplates/*.html pagetemplates/*.json
var pageFS embed.FS

// pageBase is the layout every end user's page shares (pagetemplates/
// base.html): the brand's logo or name, a centred card, the support footer,
// one <style> the CSP allows by its hash, no script. A page is base plus a
// template named "content" (see newPageTemplate); it sees a pageData.
var pageBase = template.Must(template.ParseFS(pageFS, "pagetemplates/base.html"))

// newPageTemplate returns the shared layout with the "content" template of
// the named file in pagetemplates (e.g. "page.html"); execute it as "base"
// through pages.render.
func newPageTemplate(file string) *template.Template {
	return template.Must(template.Must(pageBase.Clone()).ParseFS(pageFS, path.Join("pagetemplates", file)))
}

var pageTmpl = newPageTemplate("page.html")

// pageTexts holds the texts by locale: one file per locale,
// pagetemplates/<locale>.json, where <locale> is one of reauth.Locales. A
// locale without a file falls back to English.
var pageTexts = mustLoadPageTexts()

// mustLoadPageTexts reads the embedded locale files and panics unless each
// is for a known locale and has a title and a text for every page kind and
// every layout text.
func mustLoadPageTexts() map[string]localeTexts {
	files, err := pageFS.ReadDir("pagetemplates")
	if err != nil {
		panic(err)
	}
	texts := map[string]localeTexts{}
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
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			panic(fmt.Sprintf("pagetemplates/%s: %v", f.Name(), err))
		}
		var lt localeTexts
		dec := json.NewDecoder(bytes.NewReader(raw[layoutKey]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&lt.layout); err != nil {
			panic(fmt.Sprintf("pagetemplates/%s: %s: %v", f.Name(), layoutKey, err))
		}
		l := lt.layout
		if l.Back == "" || l.BackUnbranded == "" || l.Support == "" || l.Questions == "" || l.Or == "" || l.HelpPage == "" {
			panic(fmt.Sprintf("pagetemplates/%s: %s needs every text", f.Name(), layoutKey))
		}
		delete(raw, layoutKey)
		lt.pages = map[pageKind]pageText{}
		for k, v := range raw {
			var pt pageText
			if err := json.Unmarshal(v, &pt); err != nil {
				panic(fmt.Sprintf("pagetemplates/%s: %s: %v", f.Name(), k, err))
			}
			lt.pages[pageKind(k)] = pt
		}
		if len(lt.pages) != len(pageKinds) {
			panic(fmt.Sprintf("pagetemplates/%s: %d pages, want %d", f.Name(), len(lt.pages), len(pageKinds)))
		}
		for _, k := range pageKinds {
			if lt.pages[k].Title == "" || lt.pages[k].Text == "" {
				panic(fmt.Sprintf("pagetemplates/%s: page %q needs a title and a text", f.Name(), k))
			}
		}
		texts[locale] = lt
	}
	if texts[defaultPageLocale].pages == nil {
		panic("pagetemplates: no " + defaultPageLocale + ".json")
	}
	return texts
}

// pages renders the end user's pages in the partner's brand. Its style
// sheet and Content-Security-Policy are fixed when it is made.
type pages struct {
	brand notify.Brand
	css   template.CSS
	csp   string
}

// newPages returns the pages for brand, which must pass notify.Brand's
// Validate.
func newPages(brand notify.Brand) *pages {
	brand = brand.WithDefaults()
	css := strings.NewReplacer("BRAND", brand.Color, "ONBRAND", brand.OnColor()).Replace(pageCSS)
	sum := sha256.Sum256([]byte(css))
	// Strict: nothing loads but the one style element (by its hash) and the
	// logo's origin; no script, no frames, forms only to this service.
	csp := "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	if u, err := url.Parse(brand.LogoURL); err == nil && brand.LogoURL != "" {
		csp += "; img-src " + u.Scheme + "://" + u.Host
	}
	csp += "; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	return &pages{brand: brand, css: template.CSS(css), csp: csp}
}

// pageCSS is the style of every page; BRAND is replaced by the brand
// colour, ONBRAND by the text colour on it. Top-aligned (not centred
// vertically) so that the heading is in view on a short phone screen.
const pageCSS = `*{box-sizing:border-box}` +
	`html{-webkit-text-size-adjust:100%}` +
	`body{margin:0;padding:48px 16px;background:#f4f5f7;color:#1f2933;font:17px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}` +
	`main{max-width:480px;margin:0 auto}` +
	`.brand{margin:0 0 20px;text-align:center;font-size:22px;font-weight:700;color:#1f2933}` +
	`.brand img{display:inline-block;max-height:48px;max-width:240px}` +
	`.card{background:#fff;border-top:5px solid BRAND;border-radius:12px;padding:32px 28px;text-align:center;box-shadow:0 1px 3px rgba(16,24,40,.1),0 8px 24px rgba(16,24,40,.06)}` +
	`.icon{width:56px;height:56px;margin:0 auto 16px;border-radius:50%;font-size:30px;line-height:56px;font-weight:700;background:#e4e7eb;color:#3e4c59}` +
	`.icon.ok{background:BRAND;color:ONBRAND}` +
	`h1{margin:0 0 12px;font-size:26px;line-height:1.25;color:#1f2933}` +
	`p{margin:0 0 24px;color:#3e4c59}` +
	`.button{display:inline-block;min-width:220px;max-width:100%;padding:14px 24px;border-radius:8px;background:BRAND;color:ONBRAND;font-weight:700;text-decoration:none}` +
	`button.button{border:0;font:inherit;font-weight:700;cursor:pointer}` + // a form's button (the opt-out's)
	`.button.second{margin-top:12px;background:#fff;color:#1f2933;border:1px solid #cbd2d9}` +
	`.button:hover{filter:brightness(.92)}` +
	`.button:focus-visible{outline:3px solid BRAND;outline-offset:3px}` +
	`footer{margin:20px 0 0;text-align:center;font-size:15px;color:#52606d}` +
	`footer a{color:#52606d}` +
	`@media (max-width:420px){body{padding:24px 12px}.card{padding:24px 18px}.button{display:block;width:100%;min-width:0}}`

// pageBrand is the brand as the layout sees it (.Brand.Name, ...).
type pageBrand struct{ Name, LogoURL, SupportURL, SupportEmail string }

// pageButton is a page's one button.
type pageButton struct{ URL, Label string }

// pageData is what a page template sees. Content is for a page's own
// template ("content") beyond Title and Text.
type pageData struct {
	Lang        string
	Title, Text string
	Tone        string // "ok" for the pages saying all is well, else "warn"
	Form        string // pageText.Button: a button POSTing to the page's own URL; "": none
	Button      *pageButton
	Brand       pageBrand
	Layout      layoutText
	CSS         template.CSS
	Content     any
}

// okPages are the pages that say all is well.
var okPages = map[pageKind]bool{pageConnected: true, pageAlreadyConnected: true}

// write answers the end user's browser with the page of the given kind.
// locale is the session's locale, or "" when there is no session: then the
// language comes from the request's Accept-Language header. A language
// without a translation gets English. back is the partner's page the
// button leads to; "" leads to SUPPORT_URL instead, or shows no button
// without one.
func (p *pages) write(w http.ResponseWriter, r *http.Request, status int, page pageKind, locale, back string) {
	lang := pageLocale(r, locale)
	text, ok := pageTexts[lang].pages[page]
	if !ok {
		text = pageTexts[lang].pages[pageError]
	}
	d := p.data(lang, back)
	d.Title, d.Text, d.Form, d.Tone = text.Title, text.Text, text.Button, "warn"
	if okPages[page] {
		d.Tone = "ok"
	}
	p.render(w, status, pageTmpl, d)
}

// data is the layout's part of a page in lang, its button leading to back
// (else SUPPORT_URL, else none).
func (p *pages) data(lang, back string) pageData {
	l := pageTexts[lang].layout
	d := pageData{Lang: lang, Layout: l, CSS: p.css, Brand: pageBrand{
		Name: p.brand.Name, LogoURL: p.brand.LogoURL, SupportURL: p.brand.SupportURL, SupportEmail: p.brand.SupportEmail,
	}}
	switch {
	case back != "":
		label := l.BackUnbranded
		if p.brand.Name != "" {
			label = strings.ReplaceAll(l.Back, "{brand}", p.brand.Name)
		}
		d.Button = &pageButton{URL: back, Label: label}
	case p.brand.SupportURL != "":
		d.Button = &pageButton{URL: p.brand.SupportURL, Label: l.Support}
	}
	return d
}

// render writes a page: tmpl is a newPageTemplate, d has Lang set (the
// Content-Language).
func (p *pages) render(w http.ResponseWriter, status int, tmpl *template.Template, d pageData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", d.Lang)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", p.csp)
	w.WriteHeader(status)
	_ = tmpl.ExecuteTemplate(w, "base", d)
}

// unbrandedPages are the pages without a brand, for writePage.
var unbrandedPages = newPages(notify.Brand{})

// writePage writes a page without a brand and without a button back (tests
// and code without a server).
func writePage(w http.ResponseWriter, r *http.Request, status int, page pageKind, locale string) {
	unbrandedPages.write(w, r, status, page, locale, "")
}

// writePage answers the end user's browser with a page of the given kind
// about sess (nil when the request has none: then the language comes from
// Accept-Language). Its button leads back to the partner (backURL).
func (s *server) writePage(w http.ResponseWriter, r *http.Request, status int, page pageKind, sess *store.Session) {
	locale := ""
	if sess != nil {
		locale = sess.Locale
	}
	s.pages.write(w, r, status, page, locale, s.backURL(page, sess))
}

// backURL is the partner's page a page's button leads to: after all went
// well the success page (the request's success_url while its host is
// allowed, else SUCCESS_URL), after anything else the cancel page
// (cancel_url, else CANCEL_URL); "" when there is none, and the button
// leads to SUPPORT_URL. A page that went well never links to the cancel
// page, nor one that did not to the success page, which would tell the
// partner's site the wrong outcome.
func (s *server) backURL(page pageKind, sess *store.Session) string {
	own, fallback := "", s.cfg.CancelURL
	if okPages[page] {
		fallback = s.cfg.SuccessURL
	}
	if sess != nil {
		own = sess.CancelURL
		if okPages[page] {
			own = sess.SuccessURL
		}
	}
	if own != "" && s.cfg.RedirectHosts.AllowsString(own) {
		return own
	}
	return fallback
}
