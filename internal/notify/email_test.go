package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/mailcatch"
)

const (
	testFrom     = "Reauth <noreply@reauth.example>"
	testPassword = "s3cr3t-Pa55"
)

func catcher(t *testing.T) *mailcatch.Server {
	t.Helper()
	s, err := mailcatch.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newEmail(t *testing.T, url string) *Email {
	t.Helper()
	e, err := NewEmail(EmailConfig{URL: url, From: testFrom, Timeout: 10 * time.Second}, newRenderer(t))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e
}

func testMessage(key, to string) Message {
	return Message{
		Key: key, To: to, Locale: "de", DeviceKind: reauth.Wallbox,
		Link: testLink + "?k=" + key, Step: 0, ExpiresAt: testExpiry,
	}
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestEmailSend(t *testing.T) {
	t.Parallel()

	t.Run("delivers", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		e := newEmail(t, s.URL())
		m := testMessage("reauth-42-0", "user@example.com")
		require.NoError(t, e.Send(ctxT(t), m))

		msgs := s.Messages()
		require.Len(t, msgs, 1)
		got := msgs[0]
		require.Equal(t, "noreply@reauth.example", got.From)
		require.Equal(t, []string{"user@example.com"}, got.To)
		require.Equal(t, `"Reauth" <noreply@reauth.example>`, got.Header.Get("From"))
		require.Equal(t, "<user@example.com>", got.Header.Get("To"))
		require.Equal(t, "Bitte verbinden Sie Ihre Wallbox erneut", got.Subject)
		require.Equal(t, "<reauth-42-0@reauth.example>", got.MessageID)
		require.Equal(t, "reauth-42-0", got.Header.Get("X-Reauth-Key"))
		require.Equal(t, "auto-generated", got.Header.Get("Auto-Submitted"))
		date, err := got.Header.Date()
		require.NoError(t, err)
		require.WithinDuration(t, time.Now(), date, time.Minute)
		require.Contains(t, got.Header.Get("Content-Type"), "multipart/alternative")
		require.Contains(t, got.Text, "Wallbox")
		require.Contains(t, got.Text, "4. März 2030")
		require.Contains(t, got.HTML, "<html")
		require.Contains(t, got.HTML, "Wallbox")
		require.Equal(t, m.Link, mailcatch.FindLink(got.Text, testLink))
		require.Contains(t, got.HTML, `href="`+m.Link+`"`)
		require.Empty(t, got.User, "no credentials, no AUTH")
	})

	t.Run("same key same message id", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		e := newEmail(t, s.URL())
		m := testMessage("reauth-7-1", "user@example.com")
		m.Step = 1
		require.NoError(t, e.Send(ctxT(t), m))
		require.NoError(t, e.Send(ctxT(t), m))
		other := m
		other.Key = "reauth-7-2"
		require.NoError(t, e.Send(ctxT(t), other))

		msgs := s.Messages()
		require.Len(t, msgs, 3)
		require.Equal(t, "<reauth-7-1@reauth.example>", msgs[0].MessageID)
		require.Equal(t, msgs[0].MessageID, msgs[1].MessageID)
		require.Equal(t, msgs[0].Subject, msgs[1].Subject)
		require.Equal(t, msgs[0].Text, msgs[1].Text)
		require.Equal(t, "<reauth-7-2@reauth.example>", msgs[2].MessageID)
		require.True(t, strings.HasPrefix(msgs[0].Subject, "Erinnerung:"))
	})

	t.Run("auth plain from the url", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		e := newEmail(t, "smtp://mailer:"+testPassword+"@"+s.Addr())
		require.NoError(t, e.Send(ctxT(t), testMessage("reauth-1-0", "user@example.com")))
		require.NoError(t, e.Send(ctxT(t), testMessage("reauth-2-0", "user@example.com")))
		msgs := s.Messages()
		require.Len(t, msgs, 2)
		require.Equal(t, "mailer", msgs[0].User)
		require.Equal(t, "mailer", msgs[1].User)
	})

	t.Run("english fallback", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		e := newEmail(t, s.URL())
		m := testMessage("reauth-3-0", "user@example.com")
		m.Locale, m.DeviceKind = "pl", reauth.Inverter
		require.NoError(t, e.Send(ctxT(t), m))
		require.Equal(t, "Please reconnect your solar inverter", s.Messages()[0].Subject)
	})
}

func TestEmailErrors(t *testing.T) {
	t.Parallel()

	noPassword := func(t *testing.T, err error) {
		t.Helper()
		require.Error(t, err)
		require.NotContains(t, err.Error(), testPassword)
		require.NotContains(t, fmt.Sprintf("%+v", err), testPassword)
	}

	t.Run("550 is permanent", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		s.Reject("gone@example.com", 550)
		e := newEmail(t, "smtp://mailer:"+testPassword+"@"+s.Addr())
		err := e.Send(ctxT(t), testMessage("reauth-5-0", "gone@example.com"))
		noPassword(t, err)
		require.ErrorIs(t, err, ErrPermanent)
		require.Contains(t, err.Error(), "550")

		// The connection is still usable afterwards.
		require.NoError(t, e.Send(ctxT(t), testMessage("reauth-6-0", "ok@example.com")))
		require.Len(t, s.Messages(), 1)
	})

	t.Run("4xx is temporary", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		s.Reject("busy@example.com", 451)
		e := newEmail(t, s.URL())
		err := e.Send(ctxT(t), testMessage("reauth-5-0", "busy@example.com"))
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrPermanent)
		require.Contains(t, err.Error(), "451")
	})

	t.Run("closed server is temporary", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		url := "smtp://mailer:" + testPassword + "@" + s.Addr()
		require.NoError(t, s.Close())
		e := newEmail(t, url)
		err := e.Send(ctxT(t), testMessage("reauth-8-0", "user@example.com"))
		noPassword(t, err)
		require.NotErrorIs(t, err, ErrPermanent)
	})

	t.Run("server gone after a send", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		e := newEmail(t, "smtp://mailer:"+testPassword+"@"+s.Addr())
		require.NoError(t, e.Send(ctxT(t), testMessage("reauth-9-0", "user@example.com")))
		require.NoError(t, s.Close())
		err := e.Send(ctxT(t), testMessage("reauth-9-1", "user@example.com"))
		noPassword(t, err)
		require.NotErrorIs(t, err, ErrPermanent)
	})

	t.Run("cancelled context", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		e := newEmail(t, s.URL())
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := e.Send(ctx, testMessage("reauth-10-0", "user@example.com"))
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorIs(t, err, ErrPermanent)
	})

	t.Run("unresponsive server times out", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = ln.Close() })
		go func() { // accepts and never greets
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { _ = c.Close() })
			}
		}()
		e, err := NewEmail(EmailConfig{URL: "smtp://" + ln.Addr().String(), From: testFrom, Timeout: 200 * time.Millisecond}, newRenderer(t))
		require.NoError(t, err)
		defer e.Close()
		start := time.Now()
		err = e.Send(context.Background(), testMessage("reauth-11-0", "user@example.com"))
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrPermanent)
		require.Less(t, time.Since(start), 5*time.Second)
	})

	t.Run("invalid message is permanent", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		e := newEmail(t, s.URL())
		for name, m := range map[string]Message{
			"empty key":     testMessage("", "user@example.com"),
			"key with @":    testMessage("a@b", "user@example.com"),
			"key with <":    testMessage("a<b", "user@example.com"),
			"bad recipient": testMessage("reauth-1-0", "not an address"),
			"no recipient":  testMessage("reauth-1-0", ""),
			"bad kind":      {Key: "reauth-1-0", To: "user@example.com", DeviceKind: "boat", Link: testLink},
			"no link":       {Key: "reauth-1-0", To: "user@example.com", DeviceKind: reauth.Wallbox},
		} {
			err := e.Send(ctxT(t), m)
			require.ErrorIs(t, err, ErrPermanent, name)
		}
		require.Empty(t, s.Messages())
	})

	t.Run("closed channel", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		e, err := NewEmail(EmailConfig{URL: s.URL(), From: testFrom}, newRenderer(t))
		require.NoError(t, err)
		require.NoError(t, e.Send(ctxT(t), testMessage("reauth-1-0", "user@example.com")))
		require.NoError(t, e.Close())
		require.NoError(t, e.Close())
		require.Error(t, e.Send(ctxT(t), testMessage("reauth-2-0", "user@example.com")))
	})
}

func TestNewEmail(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)

	for _, tc := range []struct{ name, url, from string }{
		{"bad scheme", "http://u:" + testPassword + "@mail.example:25", testFrom},
		{"no scheme", "mail.example:25", testFrom},
		{"no host", "smtp://u:" + testPassword + "@:25", testFrom},
		{"bad port", "smtp://u:" + testPassword + "@mail.example:99999", testFrom},
		{"port not a number", "smtp://u:" + testPassword + "@mail.example:abc", testFrom},
		{"unparsable", "smtp://u:" + testPassword + "@mail.example:25/%zz", testFrom},
		{"control character", "smtp://u:" + testPassword + "\x7f@mail.example", testFrom},
		{"password with slash", "smtp://u:" + testPassword + "/x@mail.example", testFrom},
		{"path", "smtp://u:" + testPassword + "@mail.example/x", testFrom},
		{"unknown parameter", "smtp://u:" + testPassword + "@mail.example?tls=yes", testFrom},
		{"bad starttls", "smtp://u:" + testPassword + "@mail.example?starttls=maybe", testFrom},
		{"starttls on smtps", "smtps://u:" + testPassword + "@mail.example?starttls=required", testFrom},
		{"bad from", "smtp://u:" + testPassword + "@mail.example", "noreply"},
		{"empty from", "smtp://u:" + testPassword + "@mail.example", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewEmail(EmailConfig{URL: tc.url, From: tc.from}, r)
			require.Error(t, err)
			require.NotContains(t, err.Error(), testPassword)
		})
	}

	for _, tc := range []struct{ name, url, addr string }{
		{"smtp default port", "smtp://mail.example", "mail.example:25"},
		{"smtps default port", "smtps://u:p@mail.example", "mail.example:465"},
		{"submission", "smtp://u:p@mail.example:587?starttls=required", "mail.example:587"},
		{"ipv6", "smtp://[::1]:2525", "[::1]:2525"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := NewEmail(EmailConfig{URL: tc.url, From: testFrom}, r)
			require.NoError(t, err)
			require.Equal(t, tc.addr, e.addr)
			require.Equal(t, "reauth.example", e.domain)
			require.NoError(t, e.Close())
		})
	}

	t.Run("no renderer", func(t *testing.T) {
		t.Parallel()
		_, err := NewEmail(EmailConfig{URL: "smtp://mail.example", From: testFrom}, nil)
		require.Error(t, err)
	})
}

func TestScrub(t *testing.T) {
	t.Parallel()
	e := &Email{pass: "p@ss/w rd"}
	for _, msg := range []string{"dial p@ss/w rd failed", "url p%40ss%2Fw+rd", "url p%40ss%2Fw%20rd"} {
		err := e.scrub(fmt.Errorf("%w: %s", ErrPermanent, msg))
		require.NotContains(t, err.Error(), "p@ss")
		require.NotContains(t, err.Error(), "p%40ss")
		require.ErrorIs(t, err, ErrPermanent)
	}
	plain := errors.New("nothing secret")
	require.Same(t, plain, e.scrub(plain))
}

// proxy forwards TCP connections to target and counts them; drop closes
// every open one, as a server restart would.
type proxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	accepted int
	open     []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { _ = ln.Close(); p.drop() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.accepted++
			p.open = append(p.open, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); _ = u.Close() }()
			go func() { _, _ = io.Copy(c, u); _ = c.Close() }()
		}
	}()
	return p
}

func (p *proxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func (p *proxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.open {
		_ = c.Close()
	}
	p.open = nil
}

func TestEmailConnectionReuse(t *testing.T) {
	t.Parallel()

	t.Run("sequential sends share one connection", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		p := newProxy(t, s.Addr())
		e := newEmail(t, "smtp://mailer:"+testPassword+"@"+p.ln.Addr().String())
		const n = 50
		for i := range n {
			require.NoError(t, e.Send(ctxT(t), testMessage(fmt.Sprintf("reauth-%d-0", i), "user@example.com")))
		}
		msgs := s.Messages()
		require.Len(t, msgs, n)
		for i, m := range msgs {
			require.Equal(t, fmt.Sprintf("<reauth-%d-0@reauth.example>", i), m.MessageID)
		}
		require.Equal(t, 1, p.count())
	})

	t.Run("reconnects after the server dropped the connection", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		p := newProxy(t, s.Addr())
		e := newEmail(t, "smtp://"+p.ln.Addr().String())
		require.NoError(t, e.Send(ctxT(t), testMessage("reauth-1-0", "user@example.com")))
		p.drop()
		require.NoError(t, e.Send(ctxT(t), testMessage("reauth-2-0", "user@example.com")))
		require.Len(t, s.Messages(), 2)
		require.Equal(t, 2, p.count())
	})

	t.Run("new connection after maxPerConn messages", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		p := newProxy(t, s.Addr())
		e := newEmail(t, "smtp://"+p.ln.Addr().String())
		for i := range maxPerConn + 1 {
			require.NoError(t, e.Send(ctxT(t), testMessage(fmt.Sprintf("reauth-%d-0", i), "user@example.com")))
		}
		require.Len(t, s.Messages(), maxPerConn+1)
		require.Equal(t, 2, p.count())
	})

	t.Run("concurrent sends", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		e := newEmail(t, s.URL())
		const n = 20
		sendAtOnce(t, e, n)
		msgs, err := s.Wait(ctxT(t), n)
		require.NoError(t, err)
		require.Len(t, msgs, n)
	})

	t.Run("concurrent sends open up to Conns connections", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		p := newProxy(t, s.Addr())
		e, err := NewEmail(EmailConfig{URL: "smtp://" + p.ln.Addr().String(), From: testFrom, Timeout: 10 * time.Second, Conns: 3}, newRenderer(t))
		require.NoError(t, err)
		t.Cleanup(func() { _ = e.Close() })
		const n = 60
		sendAtOnce(t, e, n)
		require.Len(t, s.Messages(), n)
		require.Greater(t, p.count(), 1, "sends at once use more than one connection")
		require.LessOrEqual(t, p.count(), 3, "never more than Conns")
	})
}

// sendAtOnce sends n messages to different recipients at the same time and
// requires every send to succeed.
func sendAtOnce(t *testing.T, e *Email, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- e.Send(ctxT(t), testMessage(fmt.Sprintf("reauth-%d-0", i), fmt.Sprintf("u%d@example.com", i)))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
