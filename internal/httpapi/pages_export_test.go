package httpapi

import (
	"net/http"

	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/store"
)

// Hooks for the end user's page tests in package httpapi_test.

// PageKind is pageKind.
type PageKind = pageKind

// The page kinds.
const (
	PageNotFound         = pageNotFound
	PageSuperseded       = pageSuperseded
	PageAlreadyConnected = pageAlreadyConnected
	PageExpired          = pageExpired
	PageConnected        = pageConnected
	PageCancelled        = pageCancelled
	PageInvalidDone      = pageInvalidDone
	PageError            = pageError
	PageUnsubscribe      = pageUnsubscribe
	PageUnsubscribed     = pageUnsubscribed
)

var (
	PageKinds       = pageKinds
	WritePage       = writePage
	NegotiateLocale = negotiateLocale
)

// BrandedPages writes pages in brand, the button leading to back.
func BrandedPages(brand notify.Brand) func(w http.ResponseWriter, r *http.Request, status int, page PageKind, locale, back string) {
	return newPages(brand).write
}

// BackURL is the partner's page a page's button leads to, for a server
// with cfg.
func BackURL(cfg Config, page PageKind, sess *store.Session) string {
	return (&server{cfg: cfg}).backURL(page, sess)
}
