package sim

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxBody bounds every request body the simulator reads.
const maxBody = 1 << 20

// tokenError is an RFC 6749 section 5.2 error body.
type tokenError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// handleToken is the OAuth2 token endpoint (both of Podero's URLs). It takes
// an RFC 6749 form-encoded body or a JSON object with the same fields, and
// client credentials from HTTP Basic auth or the client_id/client_secret
// fields. Grants: client_credentials and password; refresh_token is known
// but, as no refresh tokens are issued, always invalid.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	fields, err := tokenFields(r)
	if err != nil {
		tokenFail(w, http.StatusBadRequest, tokenError{"invalid_request", err.Error()})
		return
	}

	// Client authentication. Basic credentials are form-encoded before
	// base64 (RFC 6749 section 2.3.1, as OAuth2 libraries send them); raw
	// ones, as Podero's guide writes base64(client_id:client_secret), are
	// accepted too.
	id, secret, basic := r.BasicAuth()
	rawID, rawSecret := id, secret
	if basic {
		if v, err := url.QueryUnescape(id); err == nil {
			id = v
		}
		if v, err := url.QueryUnescape(secret); err == nil {
			secret = v
		}
	} else {
		id, secret = fields.Get("client_id"), fields.Get("client_secret")
	}
	if !(equal(id, s.cfg.ClientID) && equal(secret, s.cfg.ClientSecret)) &&
		!(basic && equal(rawID, s.cfg.ClientID) && equal(rawSecret, s.cfg.ClientSecret)) {
		if basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="podero"`)
		}
		tokenFail(w, http.StatusUnauthorized, tokenError{"invalid_client", "Client authentication failed."})
		return
	}

	switch grant := fields.Get("grant_type"); grant {
	case "client_credentials":
	case "password":
		if !equal(fields.Get("username"), s.cfg.Username) || !equal(fields.Get("password"), s.cfg.Password) {
			tokenFail(w, http.StatusUnauthorized, tokenError{"invalid_grant", "Invalid credentials given."})
			return
		}
	case "refresh_token":
		tokenFail(w, http.StatusBadRequest, tokenError{"invalid_grant", "Invalid refresh token."})
		return
	case "":
		tokenFail(w, http.StatusBadRequest, tokenError{"invalid_request", "Missing grant_type."})
		return
	default:
		tokenFail(w, http.StatusBadRequest, tokenError{"unsupported_grant_type", ""})
		return
	}

	token := randomToken()
	now := time.Now()
	s.mu.Lock()
	for t, exp := range s.tokens { // forget expired tokens
		if !now.Before(exp) {
			delete(s.tokens, t)
		}
	}
	s.tokens[token] = now.Add(s.cfg.TokenTTL)
	s.mu.Unlock()

	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token,
		"expires_in":   int64(s.cfg.TokenTTL / time.Second),
		"token_type":   "Bearer",
		"scope":        "read write",
	})
}

// tokenFields reads the token request's fields from a JSON object (when the
// Content-Type says JSON, or the body looks like one) or a form-encoded body.
func tokenFields(r *http.Request) (url.Values, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return nil, err
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	isJSON := mt == "application/json" || strings.HasSuffix(mt, "+json") ||
		(mt != "application/x-www-form-urlencoded" && strings.HasPrefix(strings.TrimSpace(string(body)), "{"))
	if !isJSON {
		return url.ParseQuery(string(body))
	}
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, errors.New("body is not a JSON object")
	}
	fields := url.Values{}
	for k, v := range obj {
		switch v := v.(type) {
		case string:
			fields.Set(k, v)
		case nil:
		default:
			return nil, fmt.Errorf("%s must be a string", k)
		}
	}
	return fields, nil
}

func tokenFail(w http.ResponseWriter, status int, e tokenError) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, e)
}

// equal compares secrets in constant time.
func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// randomToken returns an opaque random access token.
func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authorized reports whether r carries a bearer token that was issued and
// has not expired. Otherwise it answers 401 itself.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	ok := false
	if strings.EqualFold(scheme, "Bearer") && token != "" {
		s.mu.Lock()
		exp, found := s.tokens[token]
		s.mu.Unlock()
		ok = found && time.Now().Before(exp)
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeJSON(w, http.StatusUnauthorized, detail{"Unauthorized"})
	}
	return ok
}
