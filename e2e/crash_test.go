package e2e_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/mailcatch"
	"github.com/reauth/reauth/internal/testdb"
)

// crashSenders is PODERO_WORKERS (whose jobs send each request's first
// message) and NOTIFY_WORKERS (reminders, none due in the test) in the crash
// test: few, so that a kill strands few jobs and each of many restarts has
// fresh work to die in. Each killed process had at most this many messages
// in flight, which bounds the resends one kill can cause.
const crashSenders = 2

// crashKiller is the mail catcher's OnMessage hook of
// TestCrashBetweenSendAndMark: it SIGKILLs the live `reauth serve` right after
// a message arrived, in the window between the SMTP server accepting it and
// the service recording it as sent.
type crashKiller struct {
	target int        // kills to do in all
	share  float64    // of the arrivals while kills < target, the share that kills
	rng    *rand.Rand // guarded by mu

	mu        sync.Mutex
	live      *proc          // the process to kill; nil while none (just killed, stopped)
	killed    map[*proc]bool // processes the hook chose to kill
	armed     bool
	stopped   bool
	arrivals  int
	kills     int // SIGKILLs delivered from the hook
	immediate int // of them, before the 250 reply was written
	delayed   int // of them, 0-3 ms after it
	// immediateKeys are the Message-IDs whose sender died before the 250
	// reply was even written: each must arrive again.
	immediateKeys []string
	errs          []string

	wg   sync.WaitGroup // kills in flight
	dead chan *proc     // killed processes, for the test to restart
}

// arm lets the hook kill, starting with p.
func (k *crashKiller) arm(p *proc) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.armed, k.live = true, p
}

// setLive makes p the process to kill, once armed and until stopped.
func (k *crashKiller) setLive(p *proc) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.armed && !k.stopped {
		k.live = p
	}
}

func (k *crashKiller) wasKilled(p *proc) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.killed[p]
}

// stop ends the killing and waits for a kill in flight.
func (k *crashKiller) stop() {
	k.mu.Lock()
	k.stopped, k.live = true, nil
	k.mu.Unlock()
	k.wg.Wait()
}

// onMessage runs on the SMTP connection's goroutine, after the message is
// stored and before the 250 reply (see mailcatch.Server.OnMessage).
func (k *crashKiller) onMessage(m mailcatch.Message) {
	k.mu.Lock()
	k.arrivals++
	p := k.live
	if p == nil || k.stopped || k.kills >= k.target || k.rng.Float64() >= k.share {
		k.mu.Unlock()
		return
	}
	// Decided: this process dies. Count it now so that no other arrival
	// picks a kill beyond the target; take it back if the signal fails.
	k.live = nil
	k.killed[p] = true
	k.kills++
	now := k.rng.IntN(2) == 0
	delay := time.Duration(k.rng.Int64N(int64(3*time.Millisecond) + 1))
	if now {
		k.immediate++
		k.immediateKeys = append(k.immediateKeys, m.MessageID)
	} else {
		k.delayed++
	}
	k.wg.Add(1)
	k.mu.Unlock()

	kill := func() {
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			k.mu.Lock()
			k.kills--
			k.errs = append(k.errs, fmt.Sprintf("SIGKILL after %s: %v", m.MessageID, err))
			k.mu.Unlock()
		}
		k.dead <- p
	}
	if now {
		// Before the reply: the process is gone before it can hear the
		// 250, let alone record the message.
		defer k.wg.Done()
		kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			k.mu.Lock()
			k.errs = append(k.errs, "a SIGKILLed serve did not exit within 10 s")
			k.mu.Unlock()
		}
		return
	}
	// After the reply: the hook returns at once, the 250 goes out, and the
	// process dies 0-3 ms later, before or after its UPDATE commits.
	go func() {
		defer k.wg.Done()
		time.Sleep(delay)
		kill()
	}()
}

// TestCrashBetweenSendAndMark SIGKILLs `reauth serve` many times exactly
// between the SMTP server accepting a message and the service marking it
// sent, restarts it each time, and checks the README's promise ("Exactly one
// message per step"): a message may arrive more than once, but every copy is
// the same message under the same Message-ID, and no session ever gets two
// different messages for one step.
func TestCrashBetweenSendAndMark(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	began := time.Now()
	requests := envInt("CRASH_REQUESTS", 40)
	target := envInt("CRASH_KILLS", 20)
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("CRASH_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("CRASH_SEED=%d CRASH_REQUESTS=%d CRASH_KILLS=%d", seed, requests, target)

	s := newService(t, testdb.NewURL(t), "-users", strconv.Itoa((requests+2)/3))
	env := append(append([]string{}, s.env...),
		"NOTIFY_WORKERS="+strconv.Itoa(crashSenders), "PODERO_WORKERS="+strconv.Itoa(crashSenders),
		"PODERO_RATE_LIMIT=0", "SYNC_SCHEDULE=off", "SWEEP_SCHEDULE=off", "REMINDER_OFFSETS=24h,72h",
		"SHUTDOWN_GRACE=10s", "LOG_LEVEL=warn")

	k := &crashKiller{
		target: target, share: 0.8, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		killed: map[*proc]bool{}, dead: make(chan *proc, target+1),
	}
	s.mails.OnMessage(k.onMessage)

	conn, err := pgx.Connect(ctx, s.dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	count := func(q string, args ...any) int {
		var n int
		require.NoError(t, conn.QueryRow(ctx, q, args...).Scan(&n))
		return n
	}

	// launch starts serve and makes it the hook's target at once, before it
	// is ready: it may already be sending. It may be killed while starting.
	var live *proc
	launch := func() {
		live = start(t, env, "reauth", "serve")
		k.setLive(live) // unless not armed yet
		deadline := time.Now().Add(30 * time.Second)
		for {
			if resp, err := http.Get(s.base + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
			select {
			case <-live.done:
				if !k.wasKilled(live) {
					t.Fatalf("serve exited on its own while starting (%v):\n%s", live.err, tail(live.output.String(), 3000))
				}
				return
			default:
			}
			require.True(t, time.Now().Before(deadline), "serve not ready within 30 s")
			time.Sleep(20 * time.Millisecond)
		}
	}
	// rescue plays River's job rescuer for a process known to be dead: with
	// the only serve process gone, every running job was abandoned. River
	// retries such jobs after JOB_RESCUE_AFTER, on the leader's rescuer tick
	// (every 30 s) once the dead leader's lease has run out: too slow for
	// dozens of kills. The retried attempt is the real one.
	rescued := 0
	rescue := func() {
		rescued += testdb.RescueRunning(t, conn, "crash test: serve was SIGKILLed; job rescued at once")
	}
	launch()

	// Enqueue every request over the HTTP API, then let the killing begin
	// (a kill during a POST would leave unclear whether it was accepted).
	st := s.state(t)
	n := 0
	for _, u := range st.Orgs[0].Users {
		for _, d := range u.Devices {
			if n == requests {
				break
			}
			body := fmt.Sprintf(`{"org_id":%q,"user_id":%q,"device_kind":%q,"device_id":%q}`, st.Orgs[0].ID, u.ID, d.Kind, d.ID)
			var out struct {
				Duplicate bool `json:"duplicate"`
			}
			require.Equal(t, http.StatusAccepted, api(t, http.MethodPost, s.base+"/v1/reauth", apiToken, body, &out))
			require.False(t, out.Duplicate)
			n++
		}
	}
	require.Equal(t, requests, n)
	k.arm(live)

	// Restart serve after every kill until every request's message is
	// recorded as sent and no job but the scheduled reminders is left.
	finished := func() bool {
		return count(`SELECT count(*) FROM auth_session`) == requests &&
			count(`SELECT count(*) FROM notification WHERE step = 0 AND state = 'sent'`) == requests &&
			count(`SELECT count(*) FROM river_job WHERE state <> 'completed'
				AND NOT (state = 'scheduled' AND kind = 'reauth_notify' AND (args ->> 'step')::int > 0)`) == 0
	}
	restarts := 0
	deadline := time.Now().Add(3 * time.Minute)
	for stopped := false; ; {
		select {
		case p := <-k.dead:
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Fatal("a SIGKILLed serve did not exit within 10 s")
			}
			rescue()
			launch()
			restarts++
			continue
		case <-time.After(50 * time.Millisecond):
		}
		select {
		case <-live.done:
			if !k.wasKilled(live) {
				t.Fatalf("serve exited on its own (%v):\n%s", live.err, tail(live.output.String(), 3000))
			}
		default:
		}
		if finished() {
			if !stopped {
				// No more kills; a delayed one in flight may still land:
				// then restart once more and finish.
				k.stop()
				stopped = true
			}
			if len(k.dead) == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			k.mu.Lock()
			kills := k.kills
			k.mu.Unlock()
			var unfinished string
			require.NoError(t, conn.QueryRow(ctx, `SELECT coalesce(string_agg(kind || ' ' || id || ' ' || state || ' attempt ' || attempt
				|| ' scheduled ' || scheduled_at || ': ' || coalesce(errors[array_upper(errors, 1)] ->> 'error', 'no error'), '; '), '')
				FROM river_job WHERE finalized_at IS NULL AND NOT (state = 'scheduled' AND kind = 'reauth_notify')`).Scan(&unfinished))
			t.Fatalf("timed out: %d kills, %d of %d sent, sessions %d, unfinished jobs %d (%s)", kills,
				count(`SELECT count(*) FROM notification WHERE step = 0 AND state = 'sent'`), requests,
				count(`SELECT count(*) FROM auth_session`),
				count(`SELECT count(*) FROM river_job WHERE finalized_at IS NULL AND NOT (state = 'scheduled' AND kind = 'reauth_notify')`),
				unfinished)
		}
	}
	live.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, live.wait(t, 60*time.Second), "serve exit code after SIGTERM:\n%s", tail(live.output.String(), 3000))
	msgs := s.mails.Messages()
	k.mu.Lock() // no process is left to send: the figures are final
	kills, immediate, delayed, arrivals := k.kills, k.immediate, k.delayed, k.arrivals
	immediateKeys, errs := k.immediateKeys, k.errs
	k.mu.Unlock()
	require.Empty(t, errs)

	// The kills happened, from within the hook, in the window.
	require.GreaterOrEqual(t, kills, target, "kills between the SMTP server's acceptance and the service's record")
	require.Equal(t, kills, restarts, "every kill was followed by a restart")

	// Every session has exactly one notification row per step and channel
	// (only step 0 is due: reminders are 24 h out), sent, under its key.
	require.Equal(t, requests, count(`SELECT count(*) FROM auth_session`))
	require.Equal(t, requests, count(`SELECT count(DISTINCT device_id) FROM auth_session WHERE state = 'open'`))
	rows, err := conn.Query(ctx, `SELECT s.id, n.step, n.channel, n.state, n.idempotency_key, n.recipient
		FROM auth_session s LEFT JOIN notification n ON n.session_id = s.id ORDER BY s.id, n.step, n.channel`)
	require.NoError(t, err)
	type row struct {
		step                      *int
		channel, state, key, rcpt *string
	}
	bySession := map[int64][]row{}
	for rows.Next() {
		var id int64
		var r row
		require.NoError(t, rows.Scan(&id, &r.step, &r.channel, &r.state, &r.key, &r.rcpt))
		if r.step == nil {
			bySession[id] = nil
			continue
		}
		bySession[id] = append(bySession[id], r)
	}
	require.NoError(t, rows.Err())
	require.Len(t, bySession, requests)
	recipientOf := map[string]string{} // key → the row's recipient
	for id, rs := range bySession {
		require.Len(t, rs, 1, "session %d: notification rows", id)
		r := rs[0]
		require.Equal(t, 0, *r.step, "session %d", id)
		require.Equal(t, "email", *r.channel, "session %d", id)
		require.Equal(t, "sent", *r.state, "session %d", id)
		require.Equal(t, fmt.Sprintf("reauth-%d-0", id), *r.key, "session %d", id)
		recipientOf[*r.key] = *r.rcpt
	}
	// The next step was scheduled exactly once per session, however often
	// its step 0 was sent or recorded.
	require.Equal(t, requests, count(`SELECT count(*) FROM river_job WHERE kind = 'reauth_notify' AND (args ->> 'step')::int = 1`))
	require.Equal(t, requests, count(`SELECT count(DISTINCT args ->> 'session_id') FROM river_job WHERE kind = 'reauth_notify' AND (args ->> 'step')::int = 1`))

	// Every copy of a Message-ID is the same message: subject, sender,
	// recipients, text and HTML (only Date may differ); and each session's
	// step has one Message-ID.
	idRE := regexp.MustCompile(`^<(reauth-(\d+)-(\d+))@example\.test>$`)
	byID := map[string][]mailcatch.Message{}
	idsPerStep := map[string]map[string]bool{} // "session/step" → Message-IDs
	for _, m := range msgs {
		match := idRE.FindStringSubmatch(m.MessageID)
		require.NotNil(t, match, "unexpected Message-ID %q", m.MessageID)
		key, step := match[1], match[2]+"/"+match[3]
		require.Equal(t, key, m.Header.Get("X-Reauth-Key"), m.MessageID)
		require.Contains(t, recipientOf, key, "%s: a message for no sent notification", m.MessageID)
		require.Equal(t, []string{recipientOf[key]}, m.To, m.MessageID)
		byID[m.MessageID] = append(byID[m.MessageID], m)
		if idsPerStep[step] == nil {
			idsPerStep[step] = map[string]bool{}
		}
		idsPerStep[step][m.MessageID] = true
	}
	for step, ids := range idsPerStep {
		require.Len(t, ids, 1, "session/step %s got different Message-IDs", step)
	}
	require.Len(t, byID, requests, "one distinct message per session")
	duplicates, maxCopies := 0, 1
	for id, copies := range byID {
		first := copies[0]
		require.NotEmpty(t, first.Text, id)
		require.NotEmpty(t, first.HTML, id)
		for _, c := range copies[1:] {
			require.Equal(t, first.Subject, c.Subject, "%s: a second, different message", id)
			require.Equal(t, first.From, c.From, "%s: a second, different message", id)
			require.Equal(t, first.To, c.To, "%s: a second, different message", id)
			require.Equal(t, first.Header.Get("From"), c.Header.Get("From"), "%s: a second, different message", id)
			require.Equal(t, first.Header.Get("To"), c.Header.Get("To"), "%s: a second, different message", id)
			require.Equal(t, first.Text, c.Text, "%s: a second, different message", id)
			require.Equal(t, first.HTML, c.HTML, "%s: a second, different message", id)
		}
		duplicates += len(copies) - 1
		maxCopies = max(maxCopies, len(copies))
	}
	// A message whose sender died before the 250 was written was never
	// recorded: it must have come again, the same.
	for _, id := range immediateKeys {
		require.GreaterOrEqual(t, len(byID[id]), 2, "%s: its sender died before the 250, yet it was not sent again", id)
	}
	// Every resend has a kill to explain it: a killed process had at most
	// crashSenders messages in flight.
	require.LessOrEqual(t, duplicates, kills*crashSenders, "more resends than the kills explain")
	if duplicates == 0 {
		t.Logf("no resends: every kill (%d immediate, %d delayed) landed after the service recorded the message", immediate, delayed)
	}

	t.Logf("crash test: requests=%d kills=%d (before the 250: %d, 0-3 ms after: %d) arrivals=%d messages=%d duplicates=%d (same key resent; at most %d copies) distinct keys=%d jobs rescued=%d wall=%s",
		requests, kills, immediate, delayed, arrivals, len(msgs), duplicates, maxCopies, len(byID), rescued,
		time.Since(began).Round(100*time.Millisecond))
}
