package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/wneessen/go-mail"
)

// lockedBuffer is a bytes.Buffer safe to write from the catcher's
// connections while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls b until it matches re or the deadline passes.
func waitFor(t *testing.T, b *lockedBuffer, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s in the output:\n%s", re, b.String())
	return nil
}

func TestMailcatchCommand(t *testing.T) {
	t.Parallel()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		// No environment at all: the catcher needs no configuration.
		done <- run(ctx, []string{"mailcatch", "-addr", "127.0.0.1:0"}, func(string) string { return "" }, &stdout, &stderr)
	}()
	m := waitFor(t, &stdout, regexp.MustCompile(`mailcatch listening on 127\.0\.0\.1:(\d+) \(SMTP_URL=smtp://127\.0\.0\.1:\d+\)`))
	port, err := strconv.Atoi(m[1])
	require.NoError(t, err)

	// A message as the service sends one: text and HTML, the link in both.
	const link = "http://127.0.0.1:8080/r/AbC-123_xyz"
	msg := mail.NewMsg()
	require.NoError(t, msg.From("Example Energy <noreply@example.com>"))
	require.NoError(t, msg.To("user@example.com"))
	msg.Subject("Reconnect your inverter")
	msg.SetBodyString(mail.TypeTextPlain, "Hello,\n\nplease reconnect your inverter: "+link+".\n\nSee https://example.com/help too.\n")
	msg.AddAlternativeString(mail.TypeTextHTML, `<p><a href="`+link+`?a=1&amp;b=2">Reconnect</a></p>`)
	c, err := mail.NewClient("127.0.0.1", mail.WithPort(port), mail.WithTLSPolicy(mail.NoTLS), mail.WithTimeout(5*time.Second))
	require.NoError(t, err)
	require.NoError(t, c.DialAndSend(msg))

	block := waitFor(t, &stdout, regexp.MustCompile(`(?s)#1 [^\n]+\n(.*?\n)$`))[1]
	require.Equal(t, "  To:      user@example.com\n"+
		"  Subject: Reconnect your inverter\n"+
		"  Link:    "+link+"\n"+
		"  Link:    https://example.com/help\n", block)

	// An HTML-only message: its links, unescaped.
	msg = mail.NewMsg()
	require.NoError(t, msg.From("noreply@example.com"))
	require.NoError(t, msg.To("second@example.com"))
	msg.Subject("Ihr Wechselrichter")
	msg.SetBodyString(mail.TypeTextHTML, `<a href="`+link+`?a=1&amp;b=2">Verbinden</a>`)
	require.NoError(t, c.DialAndSend(msg))
	block = waitFor(t, &stdout, regexp.MustCompile(`(?s)#2 [^\n]+\n(.*?\n)$`))[1]
	require.Equal(t, "  To:      second@example.com\n"+
		"  Subject: Ihr Wechselrichter\n"+
		"  Link:    "+link+"?a=1&b=2\n", block)

	// SIGINT or SIGTERM (the context) stops it with exit code 0.
	stop()
	select {
	case err := <-done:
		require.NoError(t, err)
		require.Equal(t, 0, exitCode(err, &stderr))
	case <-time.After(10 * time.Second):
		t.Fatal("mailcatch did not stop")
	}
	require.Contains(t, stderr.String(), "mailcatch: stopped after 2 messages")
}

func TestMailcatchWeb(t *testing.T) {
	t.Parallel()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var stdout lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"mailcatch", "-addr", "127.0.0.1:0", "-web", "127.0.0.1:0"}, func(string) string { return "" }, &stdout, &stdout)
	}()
	port, err := strconv.Atoi(waitFor(t, &stdout, regexp.MustCompile(`listening on 127\.0\.0\.1:(\d+)`))[1])
	require.NoError(t, err)
	pages := waitFor(t, &stdout, regexp.MustCompile(`the caught emails at (http://\S+/)\n`))[1]

	msg := mail.NewMsg()
	require.NoError(t, msg.From("noreply@example.com"))
	require.NoError(t, msg.To("user@example.com"))
	msg.Subject("Reconnect your inverter")
	msg.SetBodyString(mail.TypeTextHTML, `<p><a href="http://127.0.0.1:8080/r/x">Reconnect</a></p>`)
	c, err := mail.NewClient("127.0.0.1", mail.WithPort(port), mail.WithTLSPolicy(mail.NoTLS), mail.WithTimeout(5*time.Second))
	require.NoError(t, err)
	require.NoError(t, c.DialAndSend(msg))
	waitFor(t, &stdout, regexp.MustCompile(`#1 `))

	for path, want := range map[string]string{"": `<a href="/1">Reconnect your inverter</a>`, "1": `src="/1/html"`, "1/html": `Reconnect</a>`} {
		resp, err := http.Get(pages + path)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Contains(t, string(body), want, path)
	}
	stop()
	require.NoError(t, <-done)
}

func TestMailcatchAddressTaken(t *testing.T) {
	t.Parallel()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var first lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"mailcatch", "-addr", "127.0.0.1:0"}, func(string) string { return "" }, &first, &first)
	}()
	addr := waitFor(t, &first, regexp.MustCompile(`listening on (\S+)`))[1]

	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"mailcatch", "-addr", addr}, func(string) string { return "" }, &out, &errOut)
	require.Error(t, err)
	require.Equal(t, 1, exitCode(err, &errOut))
	require.True(t, strings.HasPrefix(errOut.String(), "reauth: mailcatch: listen: "), errOut.String())
	stop()
	require.NoError(t, <-done)
}

func TestBodyLinks(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"https://a.example/r/1", "http://b.example:8080/x?y=1"},
		bodyLinks("see https://a.example/r/1. or (http://b.example:8080/x?y=1), https://a.example/r/1 again; http:// alone, httpd"))
	require.Empty(t, bodyLinks("no links"))
}
