// Package link makes and checks the tokens in the links users click.
//
// A token is HMAC-SHA256(secret, nonce) with a 16-byte nonce from crypto/rand
// per session, encoded base64url: unguessable without both the secret and the
// database, never stored itself (the database keeps the nonce and the token's
// SHA-256 for lookup), and reproducible by the notify worker from the nonce so
// a retried message carries the same link.
//
// A reminder's opt-out token (UnsubscribeToken) is derived the same way,
// with a distinct purpose, from the session ID and its nonce.
package link

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
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

// UnsubscribePath is where the HTTP API serves the reminder opt-out (RFC
// 8058 one-click unsubscribe): GET UnsubscribePath+"{token}" shows a page
// with a button, POST stops the session's reminders.
const UnsubscribePath = "/u/"

// unsubscribePurpose keeps an opt-out token's MAC apart from a link token's
// (whose input is a bare nonce): the same key never signs the same input
// for both.
const unsubscribePurpose = "reauth unsubscribe v1\x00"

// unsubscribeLen is the length of an encoded opt-out token: the session ID
// (8 bytes) and its MAC (32 bytes), base64url without padding.
const unsubscribeLen = 54

// UnsubscribeToken is the opt-out token of the session sessionID whose link
// nonce is nonce: the session ID in the clear (to find the session without
// storing the token) and HMAC-SHA256 over a distinct purpose, the ID and the
// nonce, so it is unguessable without both the secret and the database, and
// the same in every retried message.
func (s *Signer) UnsubscribeToken(sessionID int64, nonce []byte) string {
	b := make([]byte, 8, 40)
	binary.BigEndian.PutUint64(b, uint64(sessionID))
	return base64.RawURLEncoding.EncodeToString(append(b, s.unsubscribeMAC(b, nonce)...))
}

func (s *Signer) unsubscribeMAC(id, nonce []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(unsubscribePurpose))
	m.Write(id)
	m.Write(nonce)
	return m.Sum(nil)
}

// UnsubscribeSession returns the session ID an opt-out token names, false
// when the token is malformed (turned away before any query). Whether it is
// genuine is CheckUnsubscribe's to say, with that session's nonce.
func UnsubscribeSession(token string) (int64, bool) {
	if len(token) != unsubscribeLen {
		return 0, false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token) // one spelling per token
	if err != nil || len(b) != 40 {
		return 0, false
	}
	id := int64(binary.BigEndian.Uint64(b[:8]))
	return id, id > 0
}

// CheckUnsubscribe reports whether token is the opt-out token of the session
// it names, whose link nonce is nonce (compared in constant time).
func (s *Signer) CheckUnsubscribe(token string, nonce []byte) bool {
	b, err := base64.RawURLEncoding.Strict().DecodeString(token) // one spelling per token
	if err != nil || len(b) != 40 {
		return false
	}
	return hmac.Equal(b[8:], s.unsubscribeMAC(b[:8], nonce))
}

// UnsubscribeURL is the opt-out URL of token under the service's public base
// URL, the one a reminder's List-Unsubscribe header carries.
func UnsubscribeURL(base, token string) string { return base + UnsubscribePath + token }
