package httpapi

import "crypto/sha256"

// AddrDefault is where the API listens when HTTP_ADDR is empty.
const AddrDefault = ":8080"

// API token scopes: what a bearer token may do.
const (
	ScopeEnqueue = "enqueue" // POST /v1/reauth
	ScopeRead    = "read"    // GET /v1/devices/... (sessions' authentication_url shortened to its origin)
	ScopeOps     = "ops"     // the ops page and API
	// ScopeLinks shows, with read, sessions' authentication_url whole: a
	// live one is the user's login link.
	ScopeLinks = "links"
)

// Scopes are every scope a token may have.
var Scopes = []string{ScopeEnqueue, ScopeRead, ScopeOps, ScopeLinks}

// APIToken is one bearer token accepted by /v1, kept only as its SHA-256.
type APIToken struct {
	Name   string
	Scopes []string
	Hash   [sha256.Size]byte
}

// Allows reports whether the token has scope.
func (t APIToken) Allows(scope string) bool {
	for _, s := range t.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}
