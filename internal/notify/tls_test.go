package notify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

// tlsServer is a go-smtp server that needs TLS (implicit or STARTTLS) and
// AUTH PLAIN with fixed credentials, recording whether each delivery was
// encrypted.
type tlsServer struct {
	addr       string
	clientConf *tls.Config

	mu        sync.Mutex
	delivered []bool // per message: was the connection TLS
}

func startTLSServer(t *testing.T, implicit bool, user, pass string) *tlsServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)

	ts := &tlsServer{clientConf: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &tlsSession{ts: ts, c: c, user: user, pass: pass}, nil
	}))
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.ErrorLog = log.New(io.Discard, "", 0)
	var ln net.Listener
	if implicit {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	require.NoError(t, err)
	ts.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = ln.Close(); _ = srv.Close() })
	return ts
}

func (ts *tlsServer) messages() []bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]bool(nil), ts.delivered...)
}

type tlsSession struct {
	ts         *tlsServer
	c          *smtp.Conn
	user, pass string
	authed     bool
}

func (s *tlsSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *tlsSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.user || pass != s.pass {
			return errors.New("bad credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *tlsSession) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	return nil
}
func (s *tlsSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *tlsSession) Data(r io.Reader) error {
	if _, err := io.ReadAll(r); err != nil {
		return err
	}
	_, isTLS := s.c.TLSConnectionState()
	s.ts.mu.Lock()
	s.ts.delivered = append(s.ts.delivered, isTLS)
	s.ts.mu.Unlock()
	return nil
}
func (s *tlsSession) Reset()        {}
func (s *tlsSession) Logout() error { return nil }

func TestEmailTLS(t *testing.T) {
	t.Parallel()
	// A password that needs escaping in a URL.
	const pass = "p@ss/w:rd"
	escaped := "p%40ss%2Fw%3Ard"

	for _, tc := range []struct {
		name     string
		implicit bool
		url      func(addr string) string
	}{
		{"smtps implicit tls", true, func(a string) string { return "smtps://mailer:" + escaped + "@" + a }},
		{"starttls opportunistic", false, func(a string) string { return "smtp://mailer:" + escaped + "@" + a }},
		{"starttls required", false, func(a string) string { return "smtp://mailer:" + escaped + "@" + a + "?starttls=required" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := startTLSServer(t, tc.implicit, "mailer", pass)
			e, err := NewEmail(EmailConfig{URL: tc.url(ts.addr), From: testFrom, Timeout: 10 * time.Second, TLSConfig: ts.clientConf}, newRenderer(t))
			require.NoError(t, err)
			defer e.Close()
			require.NoError(t, e.Send(ctxT(t), testMessage("reauth-1-0", "user@example.com")))
			require.NoError(t, e.Send(ctxT(t), testMessage("reauth-2-0", "user@example.com")))
			require.Equal(t, []bool{true, true}, ts.messages())
		})
	}

	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		ts := startTLSServer(t, true, "mailer", pass)
		e, err := NewEmail(EmailConfig{URL: "smtps://mailer:" + escaped + "@" + ts.addr, From: testFrom, Timeout: 10 * time.Second}, newRenderer(t))
		require.NoError(t, err)
		defer e.Close()
		err = e.Send(ctxT(t), testMessage("reauth-1-0", "user@example.com"))
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrPermanent)
		require.NotContains(t, err.Error(), pass)
		require.NotContains(t, err.Error(), escaped)
	})

	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		ts := startTLSServer(t, true, "mailer", pass)
		e, err := NewEmail(EmailConfig{URL: "smtps://mailer:wrong-" + escaped + "@" + ts.addr, From: testFrom, Timeout: 10 * time.Second, TLSConfig: ts.clientConf}, newRenderer(t))
		require.NoError(t, err)
		defer e.Close()
		err = e.Send(ctxT(t), testMessage("reauth-1-0", "user@example.com"))
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrPermanent, "a configuration fault, not the message's")
		require.NotContains(t, err.Error(), pass)
		require.Empty(t, ts.messages())
	})
}
