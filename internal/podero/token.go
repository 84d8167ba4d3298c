package podero

import (
	"context"
	"errors"
	"net/http"
	"time"

	"golang.org/x/oauth2"
)

// cachedToken is an access token and when it must be replaced.
type cachedToken struct {
	access    string
	refreshAt time.Time // zero: reuse until invalidated
}

func (t *cachedToken) fresh(now time.Time) bool {
	return t.refreshAt.IsZero() || now.Before(t.refreshAt)
}

// tokenFetch is one token request that every caller needing a token while it
// runs waits for. tok and err are set before done is closed.
type tokenFetch struct {
	done chan struct{}
	tok  *cachedToken
	err  *Error
}

// InvalidateToken drops the cached access token, so that the next call
// fetches a new one. Call it when the API answered 401 with the current
// token. A fetch already in flight is not affected.
func (c *Client) InvalidateToken() {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	c.token = nil
}

// accessToken returns the cached access token, or fetches a new one when
// there is none or it is about to expire. Concurrent callers share a single
// fetch. A caller whose ctx ends stops waiting, but the fetch goes on (bounded
// by RequestTimeout) so that the others, and later callers, get its token.
func (c *Client) accessToken(ctx context.Context) (string, error) {
	c.tokenMu.Lock()
	if t := c.token; t != nil && t.fresh(time.Now()) {
		c.tokenMu.Unlock()
		return t.access, nil
	}
	f := c.tokenInFl
	if f == nil {
		f = &tokenFetch{done: make(chan struct{})}
		c.tokenInFl = f
		// Not ctx itself: the fetch is shared, so one caller's cancellation
		// must not fail it for all the others.
		go c.fetchToken(context.WithoutCancel(ctx), f)
	}
	c.tokenMu.Unlock()

	select {
	case <-f.done:
		if f.err != nil {
			e := *f.err // a copy each: callers may annotate their error
			return "", &e
		}
		return f.tok.access, nil
	case <-ctx.Done():
		return "", &Error{Kind: KindRetryable, Op: OpToken, Detail: transportDetail(ctx.Err()), Err: ctx.Err()}
	}
}

// fetchToken runs f: it asks the token endpoint for a new token and, on
// success, caches it.
//
// ctx must not be cancellable by a caller (x/oauth2 keeps the context it is
// given for the token request); it gets its own timeout here, and carries the
// configured HTTP client to x/oauth2.
func (c *Client) fetchToken(ctx context.Context, f *tokenFetch) {
	ctx, cancel := c.requestContext(ctx)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.cfg.HTTPClient)

	start := time.Now()
	var (
		tok *oauth2.Token
		err error
	)
	if c.pw != nil {
		tok, err = c.pw.PasswordCredentialsToken(ctx, c.cfg.Username, c.cfg.Password)
	} else {
		tok, err = c.cc.Token(ctx)
	}

	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if err != nil {
		f.err = c.tokenError(err)
	} else {
		f.tok = &cachedToken{access: tok.AccessToken, refreshAt: c.refreshAt(start, tok.Expiry)}
		c.token = f.tok
	}
	c.tokenInFl = nil
	close(f.done)
}

// refreshAt is when a token fetched at start that expires at expiry must be
// replaced: TokenRefreshEarly before expiry, but no earlier than half its
// lifetime. Zero when the token does not expire.
func (c *Client) refreshAt(start, expiry time.Time) time.Time {
	if expiry.IsZero() {
		return time.Time{}
	}
	early := min(c.cfg.TokenRefreshEarly, expiry.Sub(start)/2)
	return expiry.Add(-max(early, 0))
}

// tokenError classifies a token fetch failure. An error status is classified
// like an API status; in addition the RFC 6749 error codes that mean the
// credentials were rejected are unauthorized whatever the 4xx status (many
// servers say invalid_client with a 400). Any other failure is retryable.
func (c *Client) tokenError(err error) *Error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		e := transportError(OpToken, err)
		e.Detail = c.redact(e.Detail, "")
		return e
	}

	status := re.Response.StatusCode
	e := statusError(OpToken, status, re.Response.Header, re.Body)
	switch re.ErrorCode {
	case "invalid_client", "invalid_grant", "unauthorized_client", "unauthorized":
		if status < 300 || (status < 500 && status != http.StatusTooManyRequests) {
			e.Kind = KindUnauthorized
		}
	}
	if status < 300 && e.Kind != KindUnauthorized {
		e.Kind = KindMalformed // a 2xx with an error code
	}
	if re.ErrorCode != "" {
		e.Detail = re.ErrorCode
		if re.ErrorDescription != "" {
			e.Detail += ": " + re.ErrorDescription
		}
		e.Detail = trimDetail([]byte(e.Detail))
	}
	e.Detail = c.redact(e.Detail, "")
	e.Err = err
	return e
}
