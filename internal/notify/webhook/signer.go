// Package webhook POSTs signed JSON to a partner's endpoint, following
// Standard Webhooks 1.0 (https://www.standardwebhooks.com): a Signer makes
// the signature, a Sender delivers any payload (link messages, lifecycle
// events), and Channel is the notify.Channel that sends a link message to
// the partner's own push service.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks header names.
const (
	HeaderID        = "webhook-id"        // the message's id, the same on every retry
	HeaderTimestamp = "webhook-timestamp" // this attempt's time, Unix seconds
	HeaderSignature = "webhook-signature" // "v1,<base64 HMAC-SHA256>", space-separated if several
)

// SecretPrefix starts every secret: "whsec_" followed by the standard
// base64 of 24 to 64 random bytes (for example
// "whsec_" + base64(openssl rand 32)).
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a timestamp may be from now for Verify when
// its tolerance is 0.
const DefaultTolerance = 5 * time.Minute

// Errors from Verify.
var (
	ErrMissingHeaders = errors.New("webhook: webhook-id, webhook-timestamp or webhook-signature header missing")
	ErrTimestamp      = errors.New("webhook: timestamp invalid or outside the tolerance")
	ErrSignature      = errors.New("webhook: no matching signature")
)

// Signer signs webhook messages with one endpoint's secret. It is safe for
// concurrent use.
type Signer struct {
	key []byte
}

// NewSigner checks secret ("whsec_" + base64 key of 24 to 64 bytes). Its
// errors never contain the secret.
func NewSigner(secret string) (*Signer, error) {
	key, err := decodeSecret(secret)
	if err != nil {
		return nil, err
	}
	return &Signer{key: key}, nil
}

func decodeSecret(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(secret), SecretPrefix)
	if !ok {
		return nil, errors.New("webhook: the secret must start with " + SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// The decoder's error names only an offset, but say nothing of it.
		return nil, errors.New("webhook: the secret is not " + SecretPrefix + " followed by standard base64")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("webhook: the secret's key must be 24 to 64 bytes, not %d", len(key))
	}
	return key, nil
}

// Sign returns the webhook-signature value for a message: "v1," and the
// base64 HMAC-SHA256 of "id.timestamp.body", timestamp in Unix seconds.
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	return sign(s.key, id, ts.Unix(), body)
}

// Headers returns the three Standard Webhooks headers for one attempt.
func (s *Signer) Headers(id string, ts time.Time, body []byte) http.Header {
	h := make(http.Header, 3)
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, s.Sign(id, ts, body))
	return h
}

func sign(key []byte, id string, unix int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.", id, unix)
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Verify checks a received webhook, as the partner's endpoint does: the
// three headers are present, the timestamp is within tolerance of now
// (DefaultTolerance if 0), and one of the space-separated signatures in
// webhook-signature is the "v1" signature of body with secret (compared in
// constant time). It returns nil, or an error matching ErrMissingHeaders,
// ErrTimestamp or ErrSignature, or one about the secret.
func Verify(secret string, headers http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	key, err := decodeSecret(secret)
	if err != nil {
		return err
	}
	id, ts, sigs := headers.Get(HeaderID), headers.Get(HeaderTimestamp), headers.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return ErrMissingHeaders
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrTimestamp
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return ErrTimestamp
	}
	want := []byte(sign(key, id, unix, body))
	for _, sig := range strings.Fields(sigs) {
		if hmac.Equal([]byte(sig), want) {
			return nil
		}
	}
	return ErrSignature
}
