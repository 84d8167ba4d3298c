package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Failed authentication is limited per client address: FailedAuthBurst
// failures at once, then one every FailedAuthEvery; beyond that the address
// gets 429 until it has waited.
const (
	FailedAuthBurst = 10
	FailedAuthEvery = 6 * time.Second
	// maxTrackedClients bounds the failure table; when full it starts over.
	maxTrackedClients = 100_000
)

// failures counts failed authentications per client address.
type failures struct {
	mu      sync.Mutex
	clients map[string]*rate.Limiter
}

// limiter returns addr's limiter, creating it.
func (f *failures) limiter(addr string) *rate.Limiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.clients == nil || len(f.clients) >= maxTrackedClients {
		f.clients = map[string]*rate.Limiter{}
	}
	l, ok := f.clients[addr]
	if !ok {
		l = rate.NewLimiter(rate.Every(FailedAuthEvery), FailedAuthBurst)
		f.clients[addr] = l
	}
	return l
}

// clientAddr is the request's peer address without the port. Forwarded
// headers are not trusted: behind a proxy, every client shares its address.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// tokenNameKey holds a *string the auth middleware fills in, so the request
// log (outside it) can name the token.
type tokenNameKey struct{}

func tokenName(ctx context.Context) string {
	if p, ok := ctx.Value(tokenNameKey{}).(*string); ok {
		return *p
	}
	return ""
}

// auth admits requests with a bearer token from API_TOKENS that has scope.
// Tokens are compared by SHA-256 in constant time; a token without the scope
// gets 403. Failures are limited per address (429 once over the limit), but
// a valid token is never turned away: behind a proxy every client shares one
// address, and one misconfigured client must not lock out the others.
func (s *server) auth(scope string, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := s.token(r)
		if !ok {
			if !s.failures.limiter(clientAddr(r)).Allow() {
				w.Header().Set("Retry-After", "60")
				writeError(w, http.StatusTooManyRequests, "too many failed authentication attempts; try again later")
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="reauth"`)
			writeError(w, http.StatusUnauthorized, "missing or invalid bearer token")
			return
		}
		if p, ok := r.Context().Value(tokenNameKey{}).(*string); ok {
			*p = tok.Name
		}
		if !tok.Allows(scope) {
			writeError(w, http.StatusForbidden, "this token lacks the "+scope+" scope")
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
	})
}

// tokenKey holds the request's APIToken, for handlers whose answer
// depends on more scopes than the one that admitted the request.
type tokenKey struct{}

// tokenAllows reports whether the request's API token has scope.
func tokenAllows(ctx context.Context, scope string) bool {
	tok, ok := ctx.Value(tokenKey{}).(APIToken)
	return ok && tok.Allows(scope)
}

// token finds the request's bearer token among the configured ones.
func (s *server) token(r *http.Request) (APIToken, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return APIToken{}, false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	found, match := APIToken{}, 0
	for _, t := range s.cfg.Tokens { // every token compared: no early exit to time
		if subtle.ConstantTimeCompare(sum[:], t.Hash[:]) == 1 {
			found, match = t, 1
		}
	}
	return found, match == 1
}
