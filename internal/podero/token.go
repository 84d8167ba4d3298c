package podero

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
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
		// Every class waits for the token: it goes first at the limiter.
		go c.fetchToken(WithClass(context.WithoutCancel(ctx), ClassInteractive), f)
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
// success, caches it. With TokenBodyAuto a body the endpoint turns away (see
// bodyRejected) is followed, in the same fetch, by one request with the
// other body; each request passes the breaker and the limiter.
//
// ctx must not be cancellable by a caller (x/oauth2 keeps the context it is
// given for the token request); it gets its own timeouts for the limiter and
// the request, and carries the configured HTTP client to x/oauth2.
func (c *Client) fetchToken(ctx context.Context, f *tokenFetch) {
	c.tokenMu.Lock()
	bodies := []string{c.tokenBody}
	c.tokenMu.Unlock()
	if c.cfg.TokenBody == TokenBodyAuto {
		bodies = append(bodies, otherTokenBody(bodies[0]))
	}

	var (
		tok  *cachedToken
		err  *Error
		used string
	)
	for i, body := range bodies {
		e := c.guard(ctx, OpToken, func(ctx context.Context) *Error {
			var e *Error
			tok, e = c.requestToken(ctx, body)
			return e
		})
		if i > 0 && e != nil && bodyRejected(e) {
			// Neither body was understood: say what each got.
			e.Detail = trimDetail([]byte(body + " body: " + e.Detail + "; " + used + " body: " + err.Detail))
		}
		err, used = e, body
		if e == nil || !bodyRejected(e) {
			break
		}
	}
	c.tokenFetched(err, used)

	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if c.cfg.TokenBody == TokenBodyAuto && (err == nil || err.Kind == KindUnauthorized) {
		// The endpoint understood this body (it issued a token, or judged
		// the credentials): try it first from now on.
		switch {
		case used != c.tokenBody:
			c.cfg.Logger.Info("podero: the token endpoint turned away the "+c.tokenBody+" body and took the "+used+" body; using "+used+" from now on",
				"token_body", used, "token_url", c.cfg.TokenURL)
			c.tokenBody = used
		case err == nil && !c.tokenBodyKnown:
			c.cfg.Logger.Info("podero: the token endpoint takes the "+used+" body", "token_body", used, "token_url", c.cfg.TokenURL)
		}
		c.tokenBodyKnown = c.tokenBodyKnown || err == nil
	}
	if err != nil {
		f.err = err
	} else {
		f.tok = tok
		c.token = tok
	}
	c.tokenInFl = nil
	close(f.done)
}

// otherTokenBody is the body TokenBodyAuto tries after body.
func otherTokenBody(body string) string {
	if body == TokenBodyJSON {
		return TokenBodyForm
	}
	return TokenBodyJSON
}

// credentialsCode reports whether an RFC 6749 error code says the
// credentials were rejected.
func credentialsCode(code string) bool {
	switch code {
	case "invalid_client", "invalid_grant", "unauthorized_client", "unauthorized":
		return true
	}
	return false
}

// credentialsRejected reports whether a token fetch's e says the credentials
// were rejected: a 401 or 403, or an RFC 6749 code saying so.
func credentialsRejected(e *Error) bool {
	if e.Op != OpToken || e.Kind != KindUnauthorized {
		return false
	}
	var re *oauth2.RetrieveError
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden ||
		(errors.As(e.Err, &re) && credentialsCode(re.ErrorCode))
}

// bodyRejected reports whether e looks like a token endpoint that could not
// read the request's body, rather than one that judged the credentials: a
// 400, 415 or 422 (Django Ninja's {"detail": [...]}) without an RFC 6749
// error code, or with invalid_request or unsupported_grant_type (what a
// server says when it finds no grant_type where it looks).
func bodyRejected(e *Error) bool {
	if e.Op != OpToken {
		return false
	}
	switch e.Status {
	case http.StatusBadRequest, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
	default:
		return false
	}
	var re *oauth2.RetrieveError
	if !errors.As(e.Err, &re) {
		return false
	}
	switch re.ErrorCode {
	case "", "invalid_request", "unsupported_grant_type":
		return true
	}
	return false
}

// requestToken sends one token request with body (TokenBodyForm or
// TokenBodyJSON) and returns the token, or the failure classified by
// tokenError either way.
func (c *Client) requestToken(ctx context.Context, body string) (*cachedToken, *Error) {
	ctx, cancel := c.requestContext(ctx)
	defer cancel()

	start := c.cfg.Now()
	var (
		t   *oauth2.Token
		err error
	)
	switch {
	case body == TokenBodyJSON:
		t, err = c.jsonToken(ctx)
	case c.pw != nil:
		t, err = c.pw.PasswordCredentialsToken(context.WithValue(ctx, oauth2.HTTPClient, c.cfg.HTTPClient), c.cfg.Username, c.cfg.Password)
	default:
		t, err = c.cc.Token(context.WithValue(ctx, oauth2.HTTPClient, c.cfg.HTTPClient))
	}
	if err != nil {
		return nil, c.tokenError(err)
	}
	tok := &cachedToken{access: t.AccessToken}
	if !t.Expiry.IsZero() {
		// The expiry was set by the real clock when the response arrived:
		// carry what is left of the lifetime over to the configured clock.
		tok.refreshAt = c.refreshAt(start, time.Until(t.Expiry))
	}
	return tok, nil
}

// jsonToken asks for a token with a JSON body, as Podero's getting-started
// guide does: POST, the client credentials in the Basic header as the guide
// writes it (base64 of id:secret, not form-encoded first), and
// {"grant_type": "client_credentials"} or the password grant's fields. Its
// answer is read as x/oauth2 reads one, and a failure is the same
// *oauth2.RetrieveError, so that tokenError classifies both bodies alike.
func (c *Client) jsonToken(ctx context.Context) (*oauth2.Token, error) {
	fields := map[string]string{"grant_type": "client_credentials"}
	if c.pw != nil {
		fields = map[string]string{"grant_type": "password", "username": c.cfg.Username, "password": c.cfg.Password}
	}
	reqBody, err := json.Marshal(fields)
	if err != nil {
		return nil, errors.New("encoding the token request failed")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.TokenURL, bytes.NewReader(reqBody))
	if err != nil {
		return nil, errors.New("building the token request failed")
	}
	req.SetBasicAuth(c.cfg.ClientID, c.cfg.ClientSecret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", UserAgent)

	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err // a *url.Error: a transport failure
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("oauth2: cannot fetch token: %v", err)
	}
	return parseTokenResponse(resp, body)
}

// parseTokenResponse reads a token endpoint's answer the way x/oauth2 does:
// a form-encoded (or text/plain) body or else JSON; an error status or an
// RFC 6749 error code is an *oauth2.RetrieveError, an answer without an
// access_token a plain error.
func parseTokenResponse(resp *http.Response, body []byte) (*oauth2.Token, error) {
	failed := resp.StatusCode < 200 || resp.StatusCode > 299
	re := &oauth2.RetrieveError{Response: resp, Body: body}
	var (
		t       oauth2.Token
		expires int64
	)
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch mt {
	case "application/x-www-form-urlencoded", "text/plain":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			if failed {
				return nil, re
			}
			return nil, fmt.Errorf("oauth2: cannot parse response: %v", err)
		}
		re.ErrorCode, re.ErrorDescription, re.ErrorURI = vals.Get("error"), vals.Get("error_description"), vals.Get("error_uri")
		t.AccessToken, t.TokenType = vals.Get("access_token"), vals.Get("token_type")
		expires, _ = strconv.ParseInt(vals.Get("expires_in"), 10, 64)
	default:
		var tj struct {
			AccessToken      string      `json:"access_token"`
			TokenType        string      `json:"token_type"`
			ExpiresIn        json.Number `json:"expires_in"` // a number, or a string at some servers
			ErrorCode        string      `json:"error"`
			ErrorDescription string      `json:"error_description"`
			ErrorURI         string      `json:"error_uri"`
		}
		if err := json.Unmarshal(body, &tj); err != nil {
			if failed {
				return nil, re
			}
			return nil, fmt.Errorf("oauth2: cannot parse json: %v", err) // as x/oauth2 says it
		}
		re.ErrorCode, re.ErrorDescription, re.ErrorURI = tj.ErrorCode, tj.ErrorDescription, tj.ErrorURI
		t.AccessToken, t.TokenType = tj.AccessToken, tj.TokenType
		expires, _ = tj.ExpiresIn.Int64()
	}
	if failed || re.ErrorCode != "" {
		return nil, re
	}
	if t.AccessToken == "" {
		return nil, errors.New("oauth2: server response missing access_token")
	}
	if expires > 0 {
		t.Expiry = time.Now().Add(time.Duration(min(expires, math.MaxInt32)) * time.Second)
	}
	return &t, nil
}

// refreshAt is when a token fetched at start that lives for lifetime must be
// replaced: TokenRefreshEarly before it expires, but no earlier than half its
// lifetime.
func (c *Client) refreshAt(start time.Time, lifetime time.Duration) time.Time {
	lifetime = max(lifetime, 0)
	return start.Add(lifetime - min(c.cfg.TokenRefreshEarly, lifetime/2))
}

// tokenError classifies a token fetch failure. An error status is classified
// like an API status, except that any 3xx or 4xx but 429 is unauthorized:
// whether the endpoint rejects the credentials (many servers say
// invalid_client with a 400), is not there (404) or cannot read the body
// (400, 415, 422), no request can be made until the configuration is fixed,
// and none of it says anything about the request (a 404 here is no unknown
// device). A 2xx with one of the RFC 6749 codes that mean the credentials
// were rejected is unauthorized too. A failure to get a response is
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
	if status >= 300 && status < 500 && status != http.StatusTooManyRequests {
		e.Kind = KindUnauthorized
	}
	if credentialsCode(re.ErrorCode) && status < 300 {
		e.Kind = KindUnauthorized
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
