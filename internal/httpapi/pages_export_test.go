package httpapi

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
)

var (
	PageKinds       = pageKinds
	WritePage       = writePage
	NegotiateLocale = negotiateLocale
)
