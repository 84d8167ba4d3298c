package httpapi

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/reauth/reauth"
)

// AddrDefault is where the API listens when HTTP_ADDR is empty.
const AddrDefault = ":8080"

// API token scopes: what a bearer token may do.
const (
	ScopeEnqueue = "enqueue" // POST /v1/reauth
	ScopeRead    = "read"    // GET /v1/devices/... (sessions' authentication_url shortened to its origin)
	ScopeOps     = "ops"     // the ops page and River UI, changes included
	// ScopeOpsRead sees what ScopeOps sees, /ops and River UI, and changes
	// nothing: every state-changing request gets 403.
	ScopeOpsRead = "ops-read"
	// ScopeLinks shows, with read, sessions' authentication_url whole: a
	// live one is the user's login link.
	ScopeLinks = "links"
)

// Scopes are every scope a token may have.
var Scopes = []string{ScopeEnqueue, ScopeRead, ScopeOps, ScopeOpsRead, ScopeLinks}

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

// RenewWaitMax is the longest Config.RenewWait: the response to opening an
// expired link waits that long, on top of the server's write timeout.
const RenewWaitMax = time.Minute

// withDefaults returns cfg with its zero fields' defaults: MaxAttempts
// reauth.MaxAttemptsDefault, Logger one that discards, Now time.Now. A zero
// RenewWait does not wait and a zero RepeatCooldown is off.
func (cfg Config) withDefaults() Config {
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, reauth.MaxAttemptsDefault)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}

// validate rejects what withDefaults cannot mend.
func (cfg Config) validate() error {
	var errs []error
	if cfg.RenewWait < 0 || cfg.RenewWait > RenewWaitMax {
		errs = append(errs, fmt.Errorf("httpapi: RenewWait must be between 0 and %s", RenewWaitMax))
	}
	if cfg.RepeatCooldown < 0 || cfg.SyncInterval < 0 {
		errs = append(errs, errors.New("httpapi: RepeatCooldown and SyncInterval must not be negative"))
	}
	if cfg.MaxAttempts < 1 {
		errs = append(errs, errors.New("httpapi: MaxAttempts must be at least 1"))
	}
	if cfg.RateLimit < 0 || cfg.SyncShare < 0 || cfg.SyncShare > 1 {
		errs = append(errs, errors.New("httpapi: RateLimit must not be negative and SyncShare must be between 0 and 1"))
	}
	if err := cfg.Brand.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("httpapi: Brand: %w", err))
	}
	for _, t := range cfg.Tokens {
		for _, sc := range t.Scopes {
			if !slices.Contains(Scopes, sc) {
				errs = append(errs, fmt.Errorf("httpapi: token %q has unknown scope %q", t.Name, sc))
			}
		}
	}
	return errors.Join(errs...)
}
