// Package link makes and checks the tokens in the links users click.
//
// A token is HMAC-SHA256(secret, nonce) with a 16-byte nonce from crypto/rand
// per session, encoded base64url: unguessable without both the secret and the
// database, never stored itself (the database keeps the nonce and the token's
// SHA-256 for lookup), and reproducible by the notify worker from the nonce so
// a retried message carries the same link.
package link

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// NonceSize is the random input of a token, in bytes (128 bits).
const NonceSize = 16

// tokenLen is the length of an encoded token (32 bytes, base64url, no padding).
const tokenLen = 43

// Signer derives tokens from nonces with one secret key.
type Signer struct{ key []byte }

// MinKeyLen is the shortest key NewSigner accepts (LINK_SECRET), in bytes.
const MinKeyLen = 32

// NewSigner returns a Signer for key, which must be at least MinKeyLen bytes.
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < MinKeyLen {
		return nil, errors.New("link secret must be at least 32 bytes")
	}
	return &Signer{key: append([]byte(nil), key...)}, nil
}

// NewNonce returns a fresh random nonce.
func NewNonce() []byte {
	b := make([]byte, NonceSize)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return b
}

// Token returns the link token for nonce.
func (s *Signer) Token(nonce []byte) string {
	m := hmac.New(sha256.New, s.key)
	m.Write(nonce)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Hash is what the database stores to find a session by its token.
func Hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// WellFormed reports whether s could be a token, so malformed input is
// turned away before any query.
func WellFormed(s string) bool {
	if len(s) != tokenLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// Path is where the HTTP API serves links: GET Path+"{token}" sends the
// user on to the login, GET Path+"{token}/done" is Podero's callback.
const Path = "/r/"

// URL is the link for token under the service's public base URL
// (PUBLIC_BASE_URL), the one a message carries.
func URL(base, token string) string { return base + Path + token }

// DoneURL is where Podero sends the user back to after the login through
// token's link, with result "success" or "cancel".
func DoneURL(base, token, result string) string { return URL(base, token) + "/done?result=" + result }
