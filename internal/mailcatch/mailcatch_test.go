package mailcatch

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// send delivers raw with go-smtp's client, authenticating when user != "".
func send(t *testing.T, s *Server, user, from string, to []string, raw string) error {
	t.Helper()
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		return err
	}
	defer c.Close()
	if user != "" {
		if err := c.Auth(sasl.NewPlainClient("", user, "secret")); err != nil {
			return err
		}
	}
	if err := c.SendMail(from, to, strings.NewReader(strings.ReplaceAll(raw, "\n", "\r\n"))); err != nil {
		return err
	}
	return c.Quit()
}

const multipartMsg = `From: Reauth <noreply@example.com>
To: user@example.com
Subject: =?UTF-8?q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=
Message-ID: <reauth-42-0@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

Gr=C3=BC=C3=9Fe! Click https://reauth.example.com/r/abc?x=3D1&y=3D2 now. A very=
 long soft-broken line.
--BOUNDARY
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: base64

PHA+PGEgaHJlZj0iaHR0cHM6Ly9yZWF1dGguZXhhbXBsZS5jb20vci9hYmMiPmdv
PC9hPjwvcD4=
--BOUNDARY--
`

func TestCatch(t *testing.T) {
	t.Parallel()

	t.Run("multipart with quoted-printable and base64", func(t *testing.T) {
		t.Parallel()
		s := start(t)
		require.NoError(t, send(t, s, "", "noreply@example.com", []string{"user@example.com", "cc@example.com"}, multipartMsg))
		msgs := s.Messages()
		require.Len(t, msgs, 1)
		m := msgs[0]
		require.Equal(t, "noreply@example.com", m.From)
		require.Equal(t, []string{"user@example.com", "cc@example.com"}, m.To)
		require.Empty(t, m.User)
		require.Equal(t, "Grüße aus München", m.Subject)
		require.Equal(t, "<reauth-42-0@example.com>", m.MessageID)
		require.Equal(t, "Reauth <noreply@example.com>", m.Header.Get("From"))
		require.Equal(t, "Grüße! Click https://reauth.example.com/r/abc?x=1&y=2 now. A very long soft-broken line.", m.Text)
		require.Equal(t, `<p><a href="https://reauth.example.com/r/abc">go</a></p>`, m.HTML)
		require.Contains(t, string(m.Raw), "Content-Transfer-Encoding: base64")
		require.WithinDuration(t, time.Now(), m.Received, time.Minute)
		require.Equal(t, "https://reauth.example.com/r/abc?x=1&y=2", FindLink(m.Text, "https://reauth.example.com/r/"))
	})

	t.Run("single part", func(t *testing.T) {
		t.Parallel()
		s := start(t)
		require.NoError(t, send(t, s, "", "a@example.com", []string{"b@example.com"},
			"Subject: plain\nContent-Transfer-Encoding: base64\n\naGVsbG8gd29y\nbGQ=\n"))
		m := s.Messages()[0]
		require.Equal(t, "plain", m.Subject)
		require.Equal(t, "hello world", m.Text)
		require.Empty(t, m.HTML)
	})

	t.Run("unparsable message is kept raw", func(t *testing.T) {
		t.Parallel()
		s := start(t)
		require.NoError(t, send(t, s, "", "a@example.com", []string{"b@example.com"}, "not a header line at all\n"))
		m := s.Messages()[0]
		require.Contains(t, string(m.Raw), "not a header line")
	})

	t.Run("auth plain with any credentials", func(t *testing.T) {
		t.Parallel()
		s := start(t)
		require.NoError(t, send(t, s, "alice", "a@example.com", []string{"b@example.com"}, "Subject: hi\n\nbody\n"))
		require.Equal(t, "alice", s.Messages()[0].User)
	})

	t.Run("url and addr", func(t *testing.T) {
		t.Parallel()
		s := start(t)
		require.True(t, strings.HasPrefix(s.Addr(), "127.0.0.1:"), s.Addr())
		require.Equal(t, "smtp://"+s.Addr(), s.URL())
	})

	t.Run("messages is a copy", func(t *testing.T) {
		t.Parallel()
		s := start(t)
		require.NoError(t, send(t, s, "", "a@example.com", []string{"b@example.com"}, "Subject: hi\n\nbody\n"))
		m := s.Messages()
		m[0].To[0] = "changed"
		m[0].Header["Subject"][0] = "changed"
		require.Equal(t, "b@example.com", s.Messages()[0].To[0])
		require.Equal(t, "hi", s.Messages()[0].Header.Get("Subject"))
	})
}

func TestReject(t *testing.T) {
	t.Parallel()
	s := start(t)
	s.Reject("Bad@Example.com", 550)
	s.Reject("later@example.com", 451)

	err := send(t, s, "", "a@example.com", []string{"bad@example.com"}, "Subject: x\n\nx\n")
	var se *smtp.SMTPError
	require.ErrorAs(t, err, &se)
	require.Equal(t, 550, se.Code)

	err = send(t, s, "", "a@example.com", []string{"later@example.com"}, "Subject: x\n\nx\n")
	require.ErrorAs(t, err, &se)
	require.Equal(t, 451, se.Code)
	require.True(t, se.Temporary())

	require.NoError(t, send(t, s, "", "a@example.com", []string{"good@example.com"}, "Subject: x\n\nx\n"))
	s.Reject("bad@example.com", 0)
	require.NoError(t, send(t, s, "", "a@example.com", []string{"bad@example.com"}, "Subject: x\n\nx\n"))
	require.Len(t, s.Messages(), 2)
}

func TestWait(t *testing.T) {
	t.Parallel()

	t.Run("returns on arrival", func(t *testing.T) {
		t.Parallel()
		s := start(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			for range 3 {
				if err := send(t, s, "", "a@example.com", []string{"b@example.com"}, "Subject: x\n\nx\n"); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		msgs, err := s.Wait(ctx, 3)
		require.NoError(t, err)
		require.Len(t, msgs, 3)
		require.NoError(t, <-errc)

		msgs, err = s.Wait(ctx, 2)
		require.NoError(t, err, "already there")
		require.Len(t, msgs, 3)
	})

	t.Run("context done", func(t *testing.T) {
		t.Parallel()
		s := start(t)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := s.Wait(ctx, 1)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})

	t.Run("server closed", func(t *testing.T) {
		t.Parallel()
		s, err := Start("127.0.0.1:0")
		require.NoError(t, err)
		go func() {
			time.Sleep(20 * time.Millisecond)
			_ = s.Close()
		}()
		_, err = s.Wait(context.Background(), 1)
		require.Error(t, err)
		require.NoError(t, s.Close(), "closing twice is fine")
	})
}

func TestClosedServerRefuses(t *testing.T) {
	t.Parallel()
	s, err := Start("127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = smtp.Dial(s.Addr())
	require.Error(t, err)
}

func TestFindLink(t *testing.T) {
	t.Parallel()
	const p = "https://r.example/r/"
	for _, tc := range []struct{ name, text, want string }{
		{"none", "no link here", ""},
		{"end of text", "go to https://r.example/r/abc", "https://r.example/r/abc"},
		{"own line", "Hello\n\nhttps://r.example/r/abc?x=1&y=2\n\nbye", "https://r.example/r/abc?x=1&y=2"},
		{"sentence", "Click https://r.example/r/abc.", "https://r.example/r/abc"},
		{"parenthesised", "(see https://r.example/r/abc)", "https://r.example/r/abc"},
		{"html attribute", `<a href="https://r.example/r/abc">x</a>`, "https://r.example/r/abc"},
		{"angle brackets", "<https://r.example/r/abc>", "https://r.example/r/abc"},
		{"first of two", "https://other.example/x https://r.example/r/1 https://r.example/r/2", "https://r.example/r/1"},
		{"crlf", "https://r.example/r/abc\r\n", "https://r.example/r/abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, FindLink(tc.text, p))
		})
	}
	require.Empty(t, FindLink("https://x", ""))
}
