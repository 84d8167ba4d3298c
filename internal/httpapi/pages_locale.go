package httpapi

import (
	"net/http"
	"strconv"
	"strings"
)

// pageLocale picks the language of an end user's page: the session's locale
// when there is one (English when it has no translation), else the
// translated language the browser's Accept-Language header prefers.
func pageLocale(r *http.Request, sessionLocale string) string {
	if sessionLocale != "" {
		if l := baseLanguage(sessionLocale); pageTexts[l].pages != nil {
			return l
		}
		return defaultPageLocale
	}
	if r == nil {
		return defaultPageLocale
	}
	return negotiateLocale(r.Header.Get("Accept-Language"))
}

// negotiateLocale returns the translated language an Accept-Language header
// value prefers: the highest q-value wins, the earlier entry on a tie; a
// region counts as its language ("de-AT" is "de"); q=0 and languages without
// a translation are passed over. English when nothing fits.
func negotiateLocale(header string) string {
	best, bestQ := defaultPageLocale, 0.0
	for _, entry := range strings.Split(header, ",") {
		tag, params, _ := strings.Cut(entry, ";")
		lang := baseLanguage(tag)
		if pageTexts[lang].pages == nil {
			continue // also "*" and empty entries
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			name, value, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(name), "q") {
				v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
				if err != nil || v < 0 || v > 1 {
					v = 0 // a malformed weight makes the entry unusable
				}
				q = v
			}
		}
		if q > bestQ {
			best, bestQ = lang, q
		}
	}
	return best
}

// baseLanguage is the lower-case primary subtag of a language tag:
// "de-AT", "DE_at" and " de " are all "de".
func baseLanguage(tag string) string {
	tag = strings.TrimSpace(tag)
	if i := strings.IndexAny(tag, "-_"); i >= 0 {
		tag = tag[:i]
	}
	return strings.ToLower(tag)
}
