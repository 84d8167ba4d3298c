package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
)

// The Standard Webhooks reference test vector.
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var vectorTime = time.Unix(1614265330, 0)

func newSecret(t *testing.T, n int) string {
	t.Helper()
	key := make([]byte, n)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

func TestSign(t *testing.T) {
	t.Parallel()
	s, err := NewSigner(vectorSecret)
	require.NoError(t, err)
	require.Equal(t, vectorSig, s.Sign(vectorID, vectorTime, []byte(vectorBody)))

	h := s.Headers(vectorID, vectorTime, []byte(vectorBody))
	require.Equal(t, vectorID, h.Get("webhook-id"))
	require.Equal(t, "1614265330", h.Get("webhook-timestamp"))
	require.Equal(t, vectorSig, h.Get("webhook-signature"))
	require.NoError(t, Verify(vectorSecret, h, []byte(vectorBody), time.Minute, vectorTime.Add(30*time.Second)))
}

func TestNewSignerRejects(t *testing.T) {
	t.Parallel()
	key32 := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	for name, secret := range map[string]string{
		"empty":        "",
		"no prefix":    key32,
		"other prefix": "whsk_" + key32,
		"not base64":   "whsec_not*base64!" + key32,
		"url base64":   "whsec_" + strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString([]byte("\xfb\xff\xfe0123456789abcdef0123456"))),
		"too short":    "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456")),
		"too long":     "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)),
	} {
		_, err := NewSigner(secret)
		require.Error(t, err, name)
		if len(secret) > len(SecretPrefix) {
			require.NotContains(t, err.Error(), strings.TrimPrefix(secret, SecretPrefix), name)
		}
		_, err = NewSender(SenderConfig{Secret: secret})
		require.Error(t, err, name)
	}
	for _, n := range []int{24, 32, 64} {
		_, err := NewSigner(newSecret(t, n))
		require.NoError(t, err, n)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	secret := newSecret(t, 32)
	s, err := NewSigner(secret)
	require.NoError(t, err)
	now := time.Now()
	body := []byte(`{"type":"reauth.link","id":"reauth-1-0"}`)
	signed := s.Headers("reauth-1-0", now, body)

	require.NoError(t, Verify(secret, signed, body, 0, now))

	t.Run("tampered body", func(t *testing.T) {
		t.Parallel()
		tampered := []byte(strings.Replace(string(body), "reauth-1-0", "reauth-2-0", 1))
		require.ErrorIs(t, Verify(secret, signed, tampered, 0, now), ErrSignature)
	})
	t.Run("wrong secret", func(t *testing.T) {
		t.Parallel()
		require.ErrorIs(t, Verify(newSecret(t, 32), signed, body, 0, now), ErrSignature)
	})
	t.Run("other id", func(t *testing.T) {
		t.Parallel()
		h := signed.Clone()
		h.Set(HeaderID, "reauth-1-1")
		require.ErrorIs(t, Verify(secret, h, body, 0, now), ErrSignature)
	})
	t.Run("replayed with a new timestamp", func(t *testing.T) {
		t.Parallel()
		h := signed.Clone()
		h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10))
		require.ErrorIs(t, Verify(secret, h, body, 0, now), ErrSignature)
	})
	t.Run("several signatures, one matching", func(t *testing.T) {
		t.Parallel()
		old, err := NewSigner(newSecret(t, 32))
		require.NoError(t, err)
		h := signed.Clone()
		h.Set(HeaderSignature, "v1,bogus "+old.Sign("reauth-1-0", now, body)+" "+signed.Get(HeaderSignature))
		require.NoError(t, Verify(secret, h, body, 0, now))
		h.Set(HeaderSignature, "v1,bogus "+old.Sign("reauth-1-0", now, body))
		require.ErrorIs(t, Verify(secret, h, body, 0, now), ErrSignature)
	})
	t.Run("only v1 counts", func(t *testing.T) {
		t.Parallel()
		h := signed.Clone()
		h.Set(HeaderSignature, strings.Replace(signed.Get(HeaderSignature), "v1,", "v1a,", 1))
		require.ErrorIs(t, Verify(secret, h, body, 0, now), ErrSignature)
	})
	t.Run("timestamp tolerance", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, Verify(secret, signed, body, time.Minute, now.Add(59*time.Second)))
		require.ErrorIs(t, Verify(secret, signed, body, time.Minute, now.Add(2*time.Minute)), ErrTimestamp)
		require.ErrorIs(t, Verify(secret, signed, body, time.Minute, now.Add(-2*time.Minute)), ErrTimestamp)
		require.ErrorIs(t, Verify(secret, signed, body, 0, now.Add(DefaultTolerance+time.Minute)), ErrTimestamp)
		h := signed.Clone()
		h.Set(HeaderTimestamp, "yesterday")
		require.ErrorIs(t, Verify(secret, h, body, 0, now), ErrTimestamp)
	})
	t.Run("missing headers", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{HeaderID, HeaderTimestamp, HeaderSignature} {
			h := signed.Clone()
			h.Del(name)
			require.ErrorIs(t, Verify(secret, h, body, 0, now), ErrMissingHeaders, name)
		}
	})
	t.Run("bad secret", func(t *testing.T) {
		t.Parallel()
		err := Verify("whsec_short", signed, body, 0, now)
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrSignature)
	})
}

// TestStandardWebhooksLibrary: the reference Go library and this package
// accept each other's signatures.
func TestStandardWebhooksLibrary(t *testing.T) {
	t.Parallel()
	secret := newSecret(t, 32)
	lib, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	s, err := NewSigner(secret)
	require.NoError(t, err)
	now := time.Now()
	body := []byte(`{"type":"reauth.link","link":"https://reauth.example.com/r/x"}`)

	require.NoError(t, lib.Verify(body, s.Headers("reauth-3-0", now, body)))
	require.Error(t, lib.Verify(append(body, ' '), s.Headers("reauth-3-0", now, body)))

	sig, err := lib.Sign("reauth-3-0", now, body)
	require.NoError(t, err)
	require.Equal(t, sig, s.Sign("reauth-3-0", now, body))
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, "reauth-3-0")
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	require.NoError(t, Verify(secret, h, body, 0, now))
}
