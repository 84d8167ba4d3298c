package notify

import (
	"context"
	"errors"
	"fmt"
)

// Channel names, as stored in notification.channel and contact.channels
// (reauth.Channels lists them for the contacts API).
const (
	ChannelEmail   = "email"
	ChannelPush    = "push"
	ChannelWebhook = "webhook"
)

// Channel delivers one Message by one means (email, push, webhook). Send
// returns nil once the message is accepted by the next hop (SMTP server,
// FCM, the partner's endpoint); an error matching ErrPermanent when
// retrying cannot help for this recipient (the next channel should be
// tried); any other error is temporary (retry the same channel later).
// Implementations are safe for concurrent use, and sending the same Key twice
// sends the same message (same Message-ID, webhook-id or collapse key).
//
// A *RejectedError (find it with AsRejected) additionally names what to stop
// using, and may come with the message delivered. A caller handles an error
// from Send in this order:
//
//  1. re, ok := AsRejected(err): if ok, forget re.Tokens, and re.Address
//     when re.Mailbox is set (the address itself does not work);
//  2. if ok && re.Delivered: the message is sent (only push does this: some
//     of the user's devices took it, others are unregistered);
//  3. else errors.Is(err, ErrPermanent): give up on this channel, try the
//     next one;
//  4. else: temporary, retry this channel later.
type Channel interface {
	Name() string
	Send(ctx context.Context, m Message) error
}

// RejectedError names what the next hop refused: the recipient address an
// SMTP server refused with a 5xx to RCPT TO, the FCM tokens reported
// unregistered, or (webhook, with the endpoint's host in Reason) the
// message the partner's endpoint refused with a permanent HTTP status, or
// answered for its own reasons (Class RefusalSystem, temporary: 401, 403,
// 404, a redirect).
//
// Email refusals come in Class: RefusalMailbox (the address does not
// work: Mailbox and Permanent are set, the address is to be suppressed),
// RefusalMessage (this message was not taken, e.g. a full mailbox:
// Permanent, try the next channel, keep the address) and RefusalSystem (the
// relay's policy, authentication, routing or capacity: temporary, retry
// later, keep the address). While so many distinct addresses are refused
// that the channel itself counts as broken (see EmailHealth), Broken is set
// and no refusal is Mailbox or Permanent: nothing is suppressed, the
// message is retried.
//
// Push can return one in three situations, told apart by Delivered and
// Permanent:
//   - Delivered: at least one token accepted the message; it is sent, and
//     Tokens should be removed. Permanent is false.
//   - !Delivered && Permanent: no token accepted it and none failed
//     temporarily: nothing is left to try on this channel (also "no FCM
//     tokens" at all, with Tokens empty).
//   - !Delivered && !Permanent: no token accepted it, but some failed
//     temporarily: remove Tokens and retry later.
//
// It matches ErrPermanent exactly when Permanent is set.
type RejectedError struct {
	Channel string
	Address string // email only: the refused address (suppressed only when Mailbox)
	// Mailbox: email only: the server said the address itself does not
	// work (RefusalMailbox); callers suppress Address.
	Mailbox bool
	// Class is an email refusal's RefusalMailbox, RefusalMessage or
	// RefusalSystem; Code its enhanced status code ("5.7.1"; "" when the
	// server gave none). A webhook's is RefusalSystem when the endpoint
	// answered for its own reasons (401, 403, 404, a redirect): retried.
	Class, Code string
	// Broken: email only: the channel counts as broken (Broken.Broken is
	// true); nil otherwise. BrokenBegan: this refusal made it so.
	Broken      *EmailHealth
	BrokenBegan bool
	Status      int      // webhook: the HTTP status the endpoint answered
	Tokens      []string // push: tokens FCM reported unregistered, to be removed
	Reason      string   // the server's words, e.g. "550 5.1.1 no such user"
	Permanent   bool     // nothing left to try on this channel: matches ErrPermanent
	Delivered   bool     // push: the message still reached at least one token
}

func (e *RejectedError) Error() string {
	what := e.Address
	if len(e.Tokens) > 0 {
		what = fmt.Sprintf("%d FCM token(s) unregistered", len(e.Tokens))
	}
	if what == "" {
		what = "the message"
	}
	msg := fmt.Sprintf("notify: %s rejected %s: %s", e.Channel, what, e.Reason)
	if e.Delivered {
		msg += " (delivered to the other tokens)"
	}
	return msg
}

// Is makes a permanent RejectedError match ErrPermanent.
func (e *RejectedError) Is(target error) bool { return target == ErrPermanent && e.Permanent }

// AsRejected returns err's RejectedError, if it carries one.
func AsRejected(err error) (*RejectedError, bool) {
	var re *RejectedError
	ok := errors.As(err, &re)
	return re, ok
}
