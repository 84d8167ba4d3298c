// Package mailcatch is an in-process SMTP server that accepts every message
// and keeps it in memory. The service's demo command and end-to-end tests
// point SMTP_URL at it and read what would have reached the user.
//
// It is not a mail server: it never relays, accepts any credentials (AUTH
// PLAIN over plain TCP) or none, and forgets everything when closed.
package mailcatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// maxMessageBytes bounds one message; bigger ones are refused with 552.
const maxMessageBytes = 10 << 20

// Message is one message the server accepted.
type Message struct {
	// From is the envelope sender (MAIL FROM), To the envelope recipients
	// (RCPT TO) in the order given.
	From string
	To   []string
	// User is the AUTH PLAIN user name the client authenticated with, ""
	// when it did not authenticate.
	User string
	// Header is the parsed message header; nil if the message did not parse.
	Header mail.Header
	// Subject is the decoded Subject header (RFC 2047 words decoded).
	Subject string
	// MessageID is the Message-ID header as sent, angle brackets included:
	// "<reauth-42-0@example.com>".
	MessageID string
	// Text and HTML are the first text/plain and text/html parts (or the
	// whole body of a single-part message), transfer encoding removed and
	// CRLF line ends turned into LF. Charsets are not converted.
	Text, HTML string
	// Raw is the message exactly as received after DATA.
	Raw      []byte
	Received time.Time
}

// Server is a running catcher. Its methods are safe for concurrent use.
type Server struct {
	srv  *smtp.Server
	ln   net.Listener
	lean bool // keep no bodies or headers

	mu       sync.Mutex
	msgs     []Message
	arrived  chan struct{} // closed and replaced on every arrival
	rejects  map[string]*smtp.SMTPError
	hook     func(Message)
	closed   chan struct{}
	closeErr error
	once     sync.Once
	served   chan struct{}
}

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves SMTP
// until Close.
func Start(addr string) (*Server, error) { return listen(addr, false) }

// StartLean is Start for long runs (the benchmark): it keeps of each
// message only the envelope, Subject, MessageID and Received time.
func StartLean(addr string) (*Server, error) { return listen(addr, true) }

func listen(addr string, lean bool) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mailcatch: listen: %w", err)
	}
	s := &Server{
		lean:    lean,
		ln:      ln,
		arrived: make(chan struct{}),
		rejects: make(map[string]*smtp.SMTPError),
		closed:  make(chan struct{}),
		served:  make(chan struct{}),
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{s: s}, nil
	}))
	srv.Domain = "mailcatch.localhost"
	srv.AllowInsecureAuth = true
	srv.MaxMessageBytes = maxMessageBytes
	srv.MaxRecipients = 100
	srv.ReadTimeout = 5 * time.Minute
	srv.WriteTimeout = time.Minute
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv = srv
	go func() {
		defer close(s.served)
		_ = srv.Serve(ln)
	}()
	return s, nil
}

// Addr is the address the server listens on, e.g. "127.0.0.1:2525".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is an SMTP_URL pointing at the server: "smtp://127.0.0.1:2525".
func (s *Server) URL() string { return "smtp://" + s.Addr() }

// Count is how many messages were accepted so far.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// Messages returns a copy of every message accepted so far, in arrival order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copyLocked()
}

func (s *Server) copyLocked() []Message {
	out := make([]Message, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = clone(m)
	}
	return out
}

// clone is a deep copy of m.
func clone(m Message) Message {
	m.To = append([]string(nil), m.To...)
	m.Raw = append([]byte(nil), m.Raw...)
	if m.Header != nil {
		h := make(mail.Header, len(m.Header))
		for k, v := range m.Header {
			h[k] = append([]string(nil), v...)
		}
		m.Header = h
	}
	return m
}

// OnMessage sets fn (nil: none) to be called with (a copy of) every message
// accepted from then on. It runs on the connection's goroutine after the
// message is stored (Count, Messages and Wait already include it) and
// before the server replies 250 to the client's final ".": the client waits
// for fn to return, so it must not block for long. Calls for messages on
// different connections may run concurrently. A crash test uses it to kill
// the sender right after the message arrived, before the sender hears it
// was accepted.
func (s *Server) OnMessage(fn func(Message)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = fn
}

// Wait blocks until at least n messages have arrived and returns all of
// them (a copy), or returns an error when ctx is done or the server is
// closed first.
func (s *Server) Wait(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			out := s.copyLocked()
			s.mu.Unlock()
			return out, nil
		}
		have, arrived := len(s.msgs), s.arrived
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-s.closed:
			return nil, fmt.Errorf("mailcatch: server closed with %d of %d messages", have, n)
		case <-ctx.Done():
			return nil, fmt.Errorf("mailcatch: waiting for %d messages, have %d: %w", n, have, ctx.Err())
		}
	}
}

// Reject makes RCPT TO for addr (compared case-insensitively) fail with the
// SMTP reply code, e.g. 550 for a permanent or 450 for a temporary failure.
// A code outside 400-599 removes the rejection.
func (s *Server) Reject(addr string, code int) {
	s.RejectWith(addr, code, fmt.Sprintf("%d.1.1", code/100), "mailcatch: recipient rejected")
}

// RejectWith makes RCPT TO for addr fail with the reply code, enhanced
// status code ("5.7.1"; "" sends none) and text, e.g. 554, "5.7.1", "Relay
// access denied", as a relay refusing every recipient answers. addr "*"
// refuses every address without a rejection of its own. A code outside
// 400-599 removes the rejection.
func (s *Server) RejectWith(addr string, code int, enhanced, text string) {
	addr = strings.ToLower(strings.TrimSpace(addr))
	s.mu.Lock()
	defer s.mu.Unlock()
	if code < 400 || code > 599 {
		delete(s.rejects, addr)
		return
	}
	e := &smtp.SMTPError{Code: code, EnhancedCode: smtp.NoEnhancedCode, Message: text}
	if _, err := fmt.Sscanf(enhanced, "%d.%d.%d", &e.EnhancedCode[0], &e.EnhancedCode[1], &e.EnhancedCode[2]); err != nil {
		e.EnhancedCode = smtp.NoEnhancedCode
	}
	s.rejects[addr] = e
}

// Close stops the server at once, dropping open connections. Messages
// already accepted stay readable. Closing twice is harmless.
func (s *Server) Close() error {
	s.once.Do(func() {
		close(s.closed)
		// Close the listener here too: Serve may not have registered it
		// with the smtp.Server yet.
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.closeErr = fmt.Errorf("mailcatch: close: %w", err)
		}
		_ = s.srv.Close() // drops open connections
		<-s.served
	})
	return s.closeErr
}

func (s *Server) rejection(addr string) *smtp.SMTPError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.rejects[strings.ToLower(addr)]; ok {
		return e
	}
	return s.rejects["*"]
}

// add stores m and runs the OnMessage hook, if any.
func (s *Server) add(m Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		hook(clone(m))
	}
}

// session is one SMTP connection's state.
type session struct {
	s    *Server
	user string
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, username, _ string) error {
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	ss.to = nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if e := ss.s.rejection(to); e != nil {
		c := *e
		return &c
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := parse(raw)
	m.From = ss.from
	m.To = append([]string(nil), ss.to...)
	m.User = ss.user
	m.Received = time.Now()
	if ss.s.lean {
		m = Message{From: m.From, To: m.To, User: m.User, Subject: m.Subject, MessageID: m.MessageID, Received: m.Received}
	}
	ss.s.add(m)
	return nil
}

func (ss *session) Reset() {
	ss.from = ""
	ss.to = nil
}

func (ss *session) Logout() error { return nil }

// FindLink returns the first URL in text that starts with prefix, "" if
// there is none. The URL ends at white space, a quote or an angle bracket;
// trailing sentence punctuation is not part of it. Use it on Message.Text:
// in HTML, links are entity-escaped.
func FindLink(text, prefix string) string {
	if prefix == "" {
		return ""
	}
	i := strings.Index(text, prefix)
	if i < 0 {
		return ""
	}
	rest := text[i:]
	end := strings.IndexFunc(rest, func(r rune) bool {
		switch r {
		case '"', '\'', '<', '>', '`':
			return true
		}
		return r <= ' ' || r == 0x7f
	})
	if end >= 0 {
		rest = rest[:end]
	}
	for len(rest) > len(prefix) {
		last := rest[len(rest)-1]
		if strings.IndexByte(".,;:!?", last) >= 0 || (last == ')' && !strings.Contains(rest, "(")) {
			rest = rest[:len(rest)-1]
			continue
		}
		break
	}
	return rest
}
