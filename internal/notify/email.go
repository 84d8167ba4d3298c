package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// ErrPermanent marks a delivery that will not succeed if retried: the SMTP
// server refused the recipient for a reason about the address or the
// message (RefusalMailbox, RefusalMessage), or the Message itself is
// unusable (bad key, address, kind or link). Every other error is
// temporary.
var ErrPermanent = errors.New("permanent delivery failure")

// DefaultTimeout bounds one Send when EmailConfig.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// maxPerConn is how many messages go over one SMTP connection before it is
// replaced; some servers limit messages per connection.
const maxPerConn = 100

// DefaultConns is how many SMTP connections one Email keeps when
// EmailConfig.Conns is 0. A message is five round trips (MAIL, RCPT, DATA,
// the message, RSET): with four the benchmark's pipeline made 1,030 to
// 1,200 requests a second on two cores, with eight 1,160 to 1,320 (see
// docs/PERFORMANCE.md); and a relay across a network, at 10 ms a round
// trip, takes about 20 messages a second on each.
const DefaultConns = 8

// EmailConfig configures the email channel.
type EmailConfig struct {
	// URL is SMTP_URL: smtp://[user:pass@]host[:port] (port 25 by default;
	// STARTTLS required, except on a local host, where it is used when
	// offered; ?starttls=opportunistic or ?starttls=required overrides)
	// or smtps://[user:pass@]host[:port] (implicit TLS, port 465 by
	// default). With user info, AUTH PLAIN is used, which go-mail only does
	// over TLS or to localhost/127.0.0.1/::1.
	URL string
	// From is MAIL_FROM, e.g. "Reauth <noreply@example.com>"; its domain
	// ends every Message-ID.
	From string
	// Timeout bounds one Send (connecting included); DefaultTimeout if 0.
	Timeout time.Duration
	// TLSConfig is used for STARTTLS and smtps (tests); nil verifies the
	// server against the system roots.
	TLSConfig *tls.Config
	// Conns is SMTP_CONNS: how many connections send at once; DefaultConns
	// if 0.
	Conns int
	// BrokenAfter and BrokenWindow say when the channel counts as broken
	// (see EmailHealth): that many distinct addresses refused at RCPT TO
	// within the window, making up at least half of the answers;
	// BrokenAfterDefault and BrokenWindowDefault if 0.
	BrokenAfter  int
	BrokenWindow time.Duration
}

// Email delivers Messages over SMTP. It keeps up to Conns connections open
// and reuses them across sends (reconnecting when the server dropped one);
// each connection carries one send at a time. It is safe for concurrent use.
type Email struct {
	r        *Renderer
	from     *netmail.Address
	domain   string
	addr     string // host:port
	tlsConf  *tls.Config
	implicit bool
	pass     string // only to scrub it from errors
	timeout  time.Duration
	client   *mail.Client

	// slots has a token per connection: a Send takes one (unlike a mutex,
	// waiting for it honours the context), then the connection on top of
	// idle, the one used last, so that sends one after another share one
	// connection and more are opened only for sends at once.
	slots  chan struct{}
	mu     sync.Mutex
	idle   []*conn
	closed atomic.Bool

	watch *refusalWatch
}

// conn is one SMTP connection, not yet dialed while smtp is nil.
type conn struct {
	smtp   *smtp.Client
	raw    net.Conn // smtp's TCP connection, closed to abort a send
	dialed net.Conn // set by dial for the connection being made
	sent   int      // messages over smtp
}

// dialingKey is the context key under which dial finds the conn it dials for.
type dialingKey struct{}

var keyRE = regexp.MustCompile(`^[A-Za-z0-9_+=-]+(\.[A-Za-z0-9_+=-]+)*$`)

// NewEmail checks cfg and prepares the channel; it does not connect. Errors
// never contain the SMTP password.
func NewEmail(cfg EmailConfig, r *Renderer) (*Email, error) {
	if r == nil {
		return nil, errors.New("notify: email needs a renderer")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// url.Parse errors quote the URL, password included.
		return nil, errors.New("notify: SMTP_URL is not a valid URL")
	}
	if cfg.Conns < 0 {
		return nil, errors.New("notify: SMTP_CONNS must be positive")
	}
	n := cfg.Conns
	if n == 0 {
		n = DefaultConns
	}
	if cfg.BrokenAfter < 0 || cfg.BrokenWindow < 0 {
		return nil, errors.New("notify: BrokenAfter and BrokenWindow must not be negative")
	}
	e := &Email{r: r, timeout: cfg.Timeout, slots: make(chan struct{}, n),
		watch: newRefusalWatch(cfg.BrokenAfter, cfg.BrokenWindow, time.Now)}
	for range n {
		e.idle = append(e.idle, &conn{})
	}
	if u.User != nil {
		e.pass, _ = u.User.Password()
	}
	if e.timeout == 0 {
		e.timeout = DefaultTimeout
	}
	if e.timeout < 0 {
		return nil, errors.New("notify: email timeout must be positive")
	}
	var port int
	switch u.Scheme {
	case "smtp":
		port = 25
	case "smtps":
		port = 465
		e.implicit = true
	default:
		return nil, fmt.Errorf("notify: SMTP_URL scheme must be smtp or smtps, not %q", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return nil, errors.New("notify: SMTP_URL has no host")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, errors.New("notify: SMTP_URL must not have a path")
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return nil, errors.New("notify: SMTP_URL has an invalid port")
		}
	}
	policy := mail.TLSMandatory
	if IsLocalHost(host) {
		policy = mail.TLSOpportunistic
	}
	if e.implicit {
		policy = mail.NoTLS // TLS is done by dial
	}
	q := u.Query()
	for k := range q {
		if k != "starttls" {
			return nil, fmt.Errorf("notify: SMTP_URL: unknown parameter %q", k)
		}
	}
	switch v := q.Get("starttls"); v {
	case "":
	case "opportunistic":
		if !e.implicit {
			policy = mail.TLSOpportunistic
		}
	case "required":
		if e.implicit {
			return nil, errors.New("notify: SMTP_URL: starttls does not apply to smtps")
		}
		policy = mail.TLSMandatory
	default:
		return nil, fmt.Errorf("notify: SMTP_URL: starttls must be required or opportunistic, not %q", v)
	}
	e.addr = net.JoinHostPort(host, strconv.Itoa(port))

	from, err := netmail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("notify: MAIL_FROM is not an email address: %w", err)
	}
	at := strings.LastIndexByte(from.Address, '@')
	if at < 1 || at == len(from.Address)-1 {
		return nil, errors.New("notify: MAIL_FROM has no domain")
	}
	e.from, e.domain = from, from.Address[at+1:]

	if cfg.TLSConfig != nil {
		e.tlsConf = cfg.TLSConfig.Clone()
	} else {
		e.tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if e.tlsConf.ServerName == "" {
		e.tlsConf.ServerName = host
	}

	opts := []mail.Option{
		mail.WithPort(port),
		mail.WithTimeout(e.timeout),
		mail.WithTLSPolicy(policy),
		mail.WithTLSConfig(e.tlsConf),
		mail.WithDialContextFunc(e.dial),
		mail.WithoutNoop(),
	}
	if u.User != nil && u.User.Username() != "" {
		// go-mail's PLAIN refuses an unencrypted connection except to
		// localhost, 127.0.0.1 and ::1 (so the in-process catcher works
		// and a remote server never sees the password in clear).
		opts = append(opts,
			mail.WithSMTPAuth(mail.SMTPAuthPlain),
			mail.WithUsername(u.User.Username()),
			mail.WithPassword(e.pass),
		)
	}
	if e.client, err = mail.NewClient(host, opts...); err != nil {
		return nil, e.scrub(fmt.Errorf("notify: smtp client: %w", err))
	}
	return e, nil
}

// dial connects to the server (and does the TLS handshake for smtps),
// remembering the TCP connection so a cancelled Send can close it.
func (e *Email) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, e.addr)
	if err != nil {
		return nil, err
	}
	var nc net.Conn = raw
	if e.implicit {
		tc := tls.Client(raw, e.tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		// go-mail sees a *tls.Conn and so knows the connection is encrypted.
		nc = tc
	}
	if c, ok := ctx.Value(dialingKey{}).(*conn); ok {
		c.dialed = raw
	}
	return nc, nil
}

// Send renders m and delivers it. The Message-ID is "<Key@domain-of-From>",
// the same for every send of the same Key. A 5xx reply to RCPT TO returns
// a *RejectedError with the refused address, the server's reply and its
// class (see RejectedError and classifyRCPT; it matches ErrPermanent unless
// it is RefusalSystem or the channel counts as broken); an unusable Message
// returns an error matching ErrPermanent; any other error is temporary.
func (e *Email) Send(ctx context.Context, m Message) error {
	msg, err := e.build(m)
	if err != nil {
		return e.scrub(fmt.Errorf("notify: email %q: %w: %w", m.Key, ErrPermanent, err))
	}
	c, err := e.take(ctx)
	if err != nil {
		return fmt.Errorf("notify: email %s: %w", m.Key, err)
	}
	defer e.put(c)
	if e.closed.Load() {
		return errors.New("notify: email channel is closed")
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()

	reused := c.smtp != nil
	err = e.sendOn(ctx, c, msg)
	var se *mail.SendError
	if err != nil && reused && ctx.Err() == nil && errors.As(err, &se) && deadConn(se) {
		// The idle connection went away (server timeout, restart); nothing
		// was sent on it yet, so one retry on a fresh connection is safe.
		err = e.sendOn(ctx, c, msg)
	}
	if err == nil {
		e.watch.accepted()
		return nil
	}
	// Only the recipient's rejection may be final: a 5xx to MAIL FROM or
	// DATA is as likely a misconfigured sender or relay, fixed by an
	// operator, after which a retry succeeds. So is a 5xx to RCPT TO that is
	// not about the address, and any refusal while so many addresses are
	// refused that the relay, not the addresses, must be at fault.
	if errors.As(err, &se) && se.Reason == mail.ErrSMTPRcptTo && se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
		re := &RejectedError{Channel: ChannelEmail, Address: m.To, Reason: rcptReason(se),
			Code: se.EnhancedStatusCode(), Class: classifyRCPT(se.ErrorCode(), se.EnhancedStatusCode())}
		health, began := e.watch.refused(m.To, re.Reason)
		switch {
		case health.Broken:
			re.Broken, re.BrokenBegan = &health, began
		case re.Class == RefusalMailbox:
			re.Mailbox, re.Permanent = true, true
		case re.Class == RefusalMessage:
			re.Permanent = true
		}
		err = re
	}
	return e.scrub(fmt.Errorf("notify: email %s: %w", m.Key, err))
}

// Health says whether the channel counts as broken, from the answers to
// RCPT TO within the window; see EmailHealth.
func (e *Email) Health() EmailHealth { return e.watch.health() }

// Classes of a 5xx reply to RCPT TO, RejectedError.Class.
const (
	// RefusalMailbox: the address does not work (5.1.x but 5.1.7 and
	// 5.1.8, which are about the sender; 5.2.1, a disabled mailbox):
	// suppress it.
	RefusalMailbox = "mailbox"
	// RefusalMessage: the mailbox did not take this message (5.2.x but
	// 5.2.1: full, too large; or a bare 550, 551, 552 or 553 without an
	// enhanced code): this channel failed for the message; the address is
	// kept and tried again for the next one.
	RefusalMessage = "message"
	// RefusalSystem: the relay's policy, authentication, routing,
	// protocol or capacity (5.0.x, 5.3.x to 5.7.x, 5.1.7, 5.1.8, any other
	// bare 5xx such as 554): nothing about the address; the message is
	// retried and the address kept.
	RefusalSystem = "system"
)

// classifyRCPT classifies a 5xx reply to RCPT TO by its enhanced status
// code (RFC 3463). A reply without one says too little: 550 means "mailbox
// unavailable" as often as "refused by policy" (RFC 5321 names both), so a
// bare 550, 551, 552 or 553 fails the message on this channel but
// suppresses nothing, and any other bare code (554 "transaction failed" is
// what relays refusing to relay say) is retried.
func classifyRCPT(code int, enhanced string) string {
	var class, subject, detail int
	if _, err := fmt.Sscanf(enhanced, "%d.%d.%d", &class, &subject, &detail); err != nil || class != 5 {
		switch code {
		case 550, 551, 552, 553:
			return RefusalMessage
		}
		return RefusalSystem
	}
	switch {
	case subject == 1 && detail != 7 && detail != 8:
		return RefusalMailbox
	case subject == 2 && detail == 1:
		return RefusalMailbox
	case subject == 2:
		return RefusalMessage
	}
	return RefusalSystem
}

// rcptReason is the server's reply to RCPT TO as "<code> <enhanced> <text>",
// e.g. "550 5.1.1 No such user". go-mail keeps the reply only in the
// error's text: "sending SMTP RCPT TO command: 550 \"5.1.1 No such
// user\", affected recipient(s): ...".
func rcptReason(se *mail.SendError) string {
	code, enhanced := strconv.Itoa(se.ErrorCode()), se.EnhancedStatusCode()
	text := strings.TrimPrefix(se.Error(), se.Reason.String()+":")
	text, _, _ = strings.Cut(text, ", affected recipient(s):")
	text = strings.TrimPrefix(strings.TrimSpace(text), code)
	if u, err := strconv.Unquote(strings.TrimSpace(text)); err == nil {
		text = u
	}
	text = strings.TrimPrefix(strings.TrimSpace(text), enhanced)
	return strings.Join(strings.Fields(code+" "+enhanced+" "+text), " ")
}

// deadConn reports whether a send failed because its connection was dead
// before any of the message went out: MAIL FROM got no reply at all (a
// closed or reset connection) or 421, as opposed to the server refusing it.
// (go-mail's NOOP check before each send is off: it costs a round trip per
// message, and this finds a dead connection just as well.)
func deadConn(se *mail.SendError) bool {
	if se.Reason == mail.ErrConnCheck {
		return true
	}
	// No reply at all, or 421: the server is closing the connection (an
	// idle timeout, a restart).
	return se.Reason == mail.ErrSMTPMailFrom && (se.ErrorCode() == 0 || se.ErrorCode() == 421)
}

// Name is the channel's name, "email".
func (e *Email) Name() string { return ChannelEmail }

// take waits for a free connection and returns the one used last.
func (e *Email) take(ctx context.Context) (*conn, error) {
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.idle[len(e.idle)-1]
	e.idle = e.idle[:len(e.idle)-1]
	return c, nil
}

// put returns c to the top of the idle connections. An unconnected c goes
// to the bottom, so connected ones are reused first.
func (e *Email) put(c *conn) {
	e.mu.Lock()
	if c.smtp == nil {
		e.idle = slices.Insert(e.idle, 0, c)
	} else {
		e.idle = append(e.idle, c)
	}
	e.mu.Unlock()
	<-e.slots
}

// sendOn sends msg over c, connecting first when it is not. Any failure
// drops the connection. The caller holds c.
func (e *Email) sendOn(ctx context.Context, c *conn, msg *mail.Msg) error {
	if c.smtp != nil && c.sent >= maxPerConn {
		e.drop(c, true)
	}
	if c.smtp == nil {
		c.dialed = nil
		sc, err := e.client.DialToSMTPClientWithContext(context.WithValue(ctx, dialingKey{}, c))
		if err != nil {
			if c.dialed != nil {
				_ = c.dialed.Close()
			}
			c.dialed = nil
			if ctx.Err() != nil {
				return errors.Join(ctx.Err(), fmt.Errorf("connect: %w", err))
			}
			return fmt.Errorf("connect: %w", err)
		}
		c.smtp, c.raw, c.sent = sc, c.dialed, 0
		c.dialed = nil
	}
	raw := c.raw
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	err := e.client.SendWithSMTPClient(c.smtp, msg)
	if !stop() {
		// The context ended during the send and the connection is closed.
		e.drop(c, false)
		if err == nil {
			// Delivered just before the deadline fired.
			return nil
		}
		return errors.Join(ctx.Err(), err)
	}
	if err != nil {
		e.drop(c, false)
		return err
	}
	c.sent++
	return nil
}

// drop forgets c's connection, saying QUIT first when quit is set.
func (e *Email) drop(c *conn, quit bool) {
	if c.smtp == nil {
		return
	}
	if quit {
		_ = c.smtp.UpdateDeadline(2 * time.Second)
		_ = e.client.CloseWithSMTPClient(c.smtp)
	}
	_ = c.raw.Close()
	c.smtp, c.raw, c.sent = nil, nil, 0
}

// Close waits for the sends in progress, then says QUIT on every open
// connection. Later Sends fail.
func (e *Email) Close() error {
	e.closed.Store(true)
	for range cap(e.slots) {
		e.slots <- struct{}{}
	}
	e.mu.Lock()
	for _, c := range e.idle {
		e.drop(c, true)
	}
	e.mu.Unlock()
	for range cap(e.slots) {
		<-e.slots
	}
	return nil
}

// build renders m into a go-mail message.
func (e *Email) build(m Message) (*mail.Msg, error) {
	if !keyRE.MatchString(m.Key) || len(m.Key) > 200 {
		return nil, fmt.Errorf("invalid message key %q", m.Key)
	}
	to, err := netmail.ParseAddress(m.To)
	if err != nil {
		return nil, fmt.Errorf("invalid recipient address: %w", err)
	}
	r, err := e.r.Render(m)
	if err != nil {
		return nil, err
	}
	msg := mail.NewMsg()
	msg.FromMailAddress(e.from)
	msg.ToMailAddress(to)
	msg.Subject(r.Subject)
	msg.SetMessageIDWithValue(m.Key + "@" + e.domain)
	msg.SetDate()
	msg.SetGenHeader("X-Reauth-Key", m.Key)
	// RFC 3834: no out-of-office replies to an automatic message.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader(mail.HeaderXAutoResponseSuppress, "All")
	if m.Unsubscribe != "" {
		// RFC 8058 one-click opt-out of a series (the reminders): mail
		// clients POST "List-Unsubscribe=One-Click" to the URL.
		if u, err := url.Parse(m.Unsubscribe); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, errors.New("invalid unsubscribe URL")
		}
		msg.SetGenHeader(mail.HeaderListUnsubscribe, "<"+m.Unsubscribe+">")
		msg.SetGenHeader(mail.HeaderListUnsubscribePost, "List-Unsubscribe=One-Click")
	}
	msg.SetBodyString(mail.TypeTextPlain, r.Text)
	msg.AddAlternativeString(mail.TypeTextHTML, r.HTML)
	return msg, nil
}

// scrub replaces the SMTP password wherever it appears in err's text. An
// error that does not contain it is returned as is.
func (e *Email) scrub(err error) error {
	if err == nil || e.pass == "" {
		return err
	}
	msg, found := e.scrubText(err.Error())
	if !found {
		return err
	}
	kinds := matching(err)
	if re, ok := AsRejected(err); ok {
		c := *re
		c.Address, _ = e.scrubText(c.Address)
		c.Reason, _ = e.scrubText(c.Reason)
		kinds = append(kinds, &c)
	}
	return &scrubbedError{msg: msg, kinds: kinds}
}

// scrubText replaces the SMTP password in s, reporting whether it was there.
func (e *Email) scrubText(s string) (string, bool) {
	forms := []string{e.pass, url.QueryEscape(e.pass), url.PathEscape(e.pass), url.UserPassword("", e.pass).String()[1:]}
	found := false
	for _, f := range forms {
		if f != "" && strings.Contains(s, f) {
			s = strings.ReplaceAll(s, f, "xxxxx")
			found = true
		}
	}
	return s, found
}

// scrubbedError is an error whose text had the password removed. It keeps
// the sentinel errors the original matched, and a scrubbed copy of its
// RejectedError, but not the original itself.
type scrubbedError struct {
	msg   string
	kinds []error
}

func (s *scrubbedError) Error() string   { return s.msg }
func (s *scrubbedError) Unwrap() []error { return s.kinds }

func matching(err error) []error {
	var out []error
	for _, k := range []error{ErrPermanent, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, k) {
			out = append(out, k)
		}
	}
	return out
}

// IsLocalHost reports whether host (a name or an IP, without port) is this
// machine: localhost or a loopback address. There a sender may go without
// TLS: mail when the server offers none (a local relay or a test catcher),
// a webhook over plain http.
func IsLocalHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
