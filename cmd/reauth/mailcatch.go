package main

import (
	"context"
	"flag"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/reauth/reauth/internal/mailcatch"
)

// mailcatchAddrDefault is where `reauth mailcatch` listens unless -addr says.
const mailcatchAddrDefault = "127.0.0.1:1025"

// mailcatchCmd runs the in-process mail catcher as a real SMTP server, so
// that `reauth serve` can be run by hand without a mail server, and prints
// each message as it arrives until ctx is done (SIGINT, SIGTERM).
func mailcatchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mailcatch", flag.ContinueOnError)
	addr := fs.String("addr", mailcatchAddrDefault, "listen `address` (host:port; port 0 picks a free one)")
	web := fs.String("web", "", "also serve the caught emails as web pages, each rendered, on this `address` (e.g. 127.0.0.1:8025); off when empty")
	if err := parseFlags(fs, args, stderr, `Runs a local SMTP server that accepts every message (any credentials or
none, no TLS), relays nothing, and prints each message's subject, recipients
and the links in its body to stdout, until SIGINT or SIGTERM. Point serve at
it with SMTP_URL=smtp://ADDR. Messages are kept in memory until it stops.
With -web they are web pages too.`); err != nil {
		return ignoreHelp(err)
	}
	srv, err := mailcatch.Start(*addr)
	if err != nil {
		return err
	}
	defer srv.Close()

	var mu sync.Mutex // one block at a time: messages on several connections arrive at once
	n := 0
	srv.OnMessage(func(m mailcatch.Message) {
		mu.Lock()
		defer mu.Unlock()
		n++
		printMessage(stdout, n, m)
	})
	fmt.Fprintf(stdout, "mailcatch listening on %s (SMTP_URL=%s); Ctrl-C stops it\n", srv.Addr(), srv.URL())
	if *web != "" {
		ln, err := net.Listen("tcp", *web)
		if err != nil {
			return fmt.Errorf("mailcatch: -web: %w", err)
		}
		pages := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = pages.Serve(ln) }()
		defer pages.Close()
		fmt.Fprintf(stdout, "mailcatch: the caught emails at http://%s/\n", ln.Addr())
	}
	<-ctx.Done()
	srv.OnMessage(nil)
	mu.Lock()
	fmt.Fprintf(stderr, "mailcatch: stopped after %d messages\n", n)
	mu.Unlock()
	return nil
}

// printMessage writes one short block for message number n.
func printMessage(w io.Writer, n int, m mailcatch.Message) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n#%d %s\n", n, m.Received.UTC().Format("2006-01-02 15:04:05Z"))
	fmt.Fprintf(&b, "  To:      %s\n", strings.Join(m.To, ", "))
	fmt.Fprintf(&b, "  Subject: %s\n", m.Subject)
	links := bodyLinks(m.Text)
	if len(links) == 0 { // an HTML-only message: its links are entity-escaped
		links = bodyLinks(html.UnescapeString(m.HTML))
	}
	for _, l := range links {
		fmt.Fprintf(&b, "  Link:    %s\n", l)
	}
	if len(links) == 0 {
		fmt.Fprintf(&b, "  (no links)\n")
	}
	_, _ = io.WriteString(w, b.String())
}

// bodyLinks returns the http and https URLs in text, each once, in order.
func bodyLinks(text string) []string {
	var out []string
	seen := map[string]bool{}
	for {
		i := strings.Index(text, "http")
		if i < 0 {
			return out
		}
		text = text[i:]
		link := ""
		for _, scheme := range []string{"https://", "http://"} {
			if strings.HasPrefix(text, scheme) {
				link = mailcatch.FindLink(text, scheme)
				break
			}
		}
		if link == "" || link == "https://" || link == "http://" {
			text = text[len("http"):]
			continue
		}
		if !seen[link] {
			seen[link] = true
			out = append(out, link)
		}
		text = text[len(link):]
	}
}
