package podero

import (
	"context"
	"errors"
	"net/http"
	"net/url"
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
// fetches a new one. A fetch already in flight is not affected. A call
// answered 401 already does this itself, once, and retries with a new
// token; calling it after a KindUnauthorized error only costs a token fetch.
func (c *Client) InvalidateToken() {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	c.token = nil
}

// invalidate drops the cached token if it still is access, the token that
// was rejected, and not one fetched since.
func (c *Client) invalidate(access string) {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if c.token != nil && c.token.access == access {
		c.token = nil
	}
}

// accessToken returns the cached access token, or fetches a new one when
// there is none or it is about to expire. Concurrent callers share a single
// fetch. A caller whose ctx ends stops waiting, but the fetch goes on (bounded
// by RequestTimeout for the limiter and again for the request) so that the
// others, and later callers, get its token.
func (c *Client) accessToken(ctx context.Context) (string, error) {
	c.tokenMu.Lock()
	if t := c.token; t != nil && t.fresh(c.cfg.Now()) {
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
// given for the token request); it gets its own timeouts for the limiter and
// the request, and carries the configured HTTP client to x/oauth2.
func (c *Client) fetchToken(ctx context.Context, f *tokenFetch) {
	var tok *cachedToken
	err := c.guard(ctx, OpToken, func(ctx context.Context) *Error {
		ctx, cancel := c.requestContext(ctx)
		defer cancel()
		ctx = context.WithValue(ctx, oauth2.HTTPClient, c.cfg.HTTPClient)

		start := c.cfg.Now()
		var (
			t   *oauth2.Token
			err error
		)
		if c.pw != nil {
			t, err = c.pw.PasswordCredentialsToken(ctx, c.cfg.Username, c.cfg.Password)
		} else {
			t, err = c.cc.Token(ctx)
		}
		if err != nil {
			return c.tokenError(err)
		}
		tok = &cachedToken{access: t.AccessToken}
		if !t.Expiry.IsZero() {
			// x/oauth2 sets Expiry by the real clock when the response
			// arrives: carry what is left of the lifetime over to the
			// configured clock.
			tok.refreshAt = c.refreshAt(start, time.Until(t.Expiry))
		}
		return nil
	})

	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if err != nil {
		f.err = err
	} else {
		f.tok = tok
		c.token = tok
	}
	c.tokenInFl = nil
	close(f.done)
}

// refreshAt is when a token fetched at start that lives for lifetime must be
// replaced: TokenRefreshEarly before it expires, but no earlier than half its
// lifetime.
func (c *Client) refreshAt(start time.Time, lifetime time.Duration) time.Time {
	lifetime = max(lifetime, 0)
	return start.Add(lifetime - min(c.cfg.TokenRefreshEarly, lifetime/2))
}

// tokenError classifies a token fetch failure. An error status is classified
// like an API status; in addition the RFC 6749 error codes that mean the
// credentials were rejected are unauthorized whatever the 4xx status (many
// servers say invalid_client with a 400). A failure to get a response is
// retryable; a 2xx response x/oauth2 cannot use is malformed.
func (c *Client) tokenError(err error) *Error {
	var (
		re *oauth2.RetrieveError
		ue *url.Error
	)
	switch {
	case errors.As(err, &ue), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		e := transportError(OpToken, err)
		e.Detail = c.redact(e.Detail, "")
		return e
	case !errors.As(err, &re) || re.Response == nil:
		// A response x/oauth2 could not use, e.g. without an access_token.
		return malformed(OpToken, 0, c.redact(trimDetail([]byte(err.Error())), ""), err)
	}

	status := re.Response.StatusCode
	e := statusError(OpToken, status, re.Response.Header, re.Body, c.cfg.Now())
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
