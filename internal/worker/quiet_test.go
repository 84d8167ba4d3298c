package worker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/sendwindow"
	"github.com/reauth/reauth/internal/store"
)

// testClock is a clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func mustUTC(s string) time.Time     { t, err := time.Parse(time.RFC3339, s); mustNot(err); return t }
func mustNot(err error) {
	if err != nil {
		panic(err)
	}
}
func clockAt(s string) *testClock { return &testClock{t: mustUTC(s)} }

// TestSendWindow: with SEND_WINDOW 08:00-20:00 in Europe/Vienna (the
// default zone here), a message due outside the window goes at its next
// start, across both of 2026's daylight-saving changes; one due inside goes
// at once; the first message of an interactive request follows
// InteractiveRespectsWindow.
func TestSendWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	vienna, err := sendwindow.LoadZone("Europe/Vienna")
	require.NoError(t, err)
	setup := func(t *testing.T, clock *testClock, opts ...func(*Config)) *unitBundle {
		t.Helper()
		return newUnitBundle(t, append([]func(*Config){func(c *Config) {
			c.SendWindow = sendwindow.MustParse(sendwindow.WindowDefault)
			c.DefaultZone = vienna
			c.Now = clock.now
			c.ReminderOffsets = []time.Duration{24 * time.Hour}
		}}, opts...)...)
	}
	// request works a reauth_device job at priority (PriorityBulk: the
	// sweep's; PriorityInteractive: a partner's or a user's request).
	requestFor := func(t *testing.T, b *unitBundle, a reauth.DeviceArgs, priority int) *rivertest.WorkResult {
		t.Helper()
		res, err := b.committed(t, func(tx pgx.Tx) (*rivertest.WorkResult, error) {
			return b.deviceTestWorker(t).Work(ctx, t, tx, a, &river.InsertOpts{Priority: priority})
		})
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		return res
	}
	request := func(t *testing.T, b *unitBundle, priority int) *rivertest.WorkResult {
		t.Helper()
		return requestFor(t, b, unitArgs(), priority)
	}
	// notifyJobs is the reauth_notify jobs by step of the device's session.
	notifyJobsFor := func(t *testing.T, b *unitBundle, device string) map[int]*rivertype.JobRow {
		t.Helper()
		var id int64
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT id FROM auth_session WHERE device_id = $1`, device).Scan(&id))
		out := map[int]*rivertype.JobRow{}
		for _, j := range b.reminders(t, id) {
			var a reauth.NotifyArgs
			require.NoError(t, a.UnmarshalJSON(j.EncodedArgs))
			out[a.Step] = j
		}
		return out
	}
	notifyJobs := func(t *testing.T, b *unitBundle) map[int]*rivertype.JobRow {
		t.Helper()
		return notifyJobsFor(t, b, unitDevice)
	}
	workNotify := func(t *testing.T, b *unitBundle, job *rivertype.JobRow) *rivertest.WorkResult {
		t.Helper()
		res, err := b.committed(t, func(tx pgx.Tx) (*rivertest.WorkResult, error) { return b.notifyTestWorker(t).WorkJob(ctx, t, tx, job) })
		require.NoError(t, err)
		return res
	}

	for _, c := range []struct{ name, now, start string }{
		{"SpringForward0310", "2026-03-29T01:10:00Z", "2026-03-29T06:00:00Z"}, // 03:10 CEST → 08:00 CEST
		{"SpringForward2100", "2026-03-28T20:00:00Z", "2026-03-29T06:00:00Z"}, // 21:00 CET → 08:00 CEST the next day
		{"FallBack0310", "2026-10-25T02:10:00Z", "2026-10-25T07:00:00Z"},      // 03:10 CET → 08:00 CET
		{"FallBack2100", "2026-10-24T19:00:00Z", "2026-10-25T07:00:00Z"},      // 21:00 CEST → 08:00 CET the next day
	} {
		t.Run("SweepOutsideWaitsForTheStart/"+c.name, func(t *testing.T) {
			t.Parallel()
			clock := clockAt(c.now)
			b := setup(t, clock)
			dev := request(t, b, reauth.PriorityBulk)
			require.Empty(t, b.email.sent(), "nothing sent at night")
			jobs := notifyJobs(t, b)
			require.Len(t, jobs, 1)
			first := jobs[0]
			require.NotNil(t, first, "the first message is a reauth_notify job")
			require.True(t, mustUTC(c.start).Equal(first.ScheduledAt), "scheduled at 08:00 local: %s", first.ScheduledAt.In(vienna))
			require.Equal(t, "08:00", first.ScheduledAt.In(vienna).Format("15:04"))
			require.Contains(t, b.logs.String(), "outside the user's send window")

			// The request's job run again at night (rescued after a crash, an
			// operator's retry) defers again, and inserts no second job.
			res, err := b.committed(t, func(tx pgx.Tx) (*rivertest.WorkResult, error) {
				return b.deviceTestWorker(t).WorkJob(ctx, t, tx, b.retry(t, tx, dev.Job.ID))
			})
			require.NoError(t, err)
			require.Equal(t, river.EventKindJobCompleted, res.EventKind)
			require.Equal(t, 2, res.Job.Attempt)
			require.Equal(t, 1, b.podero.calls(), "Podero not asked again")
			require.Empty(t, b.email.sent())
			require.Len(t, notifyJobs(t, b), 1)

			// Run early (before the window opens) it snoozes; at 08:00 it sends.
			res = workNotify(t, b, first)
			require.Equal(t, river.EventKindJobSnoozed, res.EventKind)
			require.Empty(t, b.email.sent())
			clock.set(mustUTC(c.start))
			res = workNotify(t, b, first)
			require.Equal(t, river.EventKindJobCompleted, res.EventKind)
			require.Len(t, b.email.sent(), 1, "sent at the window's start")
			require.Zero(t, b.email.sent()[0].Step)

			require.Len(t, notifyJobs(t, b), 2, "the first message's job and the reminder's")
		})
	}

	t.Run("InsideGoesNow", func(t *testing.T) {
		t.Parallel()
		b := setup(t, clockAt("2026-03-29T10:00:00Z")) // 12:00 CEST
		request(t, b, reauth.PriorityBulk)
		require.Len(t, b.email.sent(), 1)
		jobs := notifyJobs(t, b)
		require.NotContains(t, jobs, 0, "no deferred first message")
		require.Contains(t, jobs, 1, "the reminder")
	})

	for _, respect := range []bool{false, true} {
		t.Run(fmt.Sprintf("Interactive/respect=%t", respect), func(t *testing.T) {
			t.Parallel()
			b := setup(t, clockAt("2026-03-29T01:10:00Z"), func(c *Config) { c.InteractiveRespectsWindow = respect })
			request(t, b, reauth.PriorityInteractive)
			if !respect {
				require.Len(t, b.email.sent(), 1, "skip (the default): the first message goes at 03:10")
				// Its reminder, due at 03:10 the next day, waits for 08:00.
				rem := notifyJobs(t, b)[1]
				require.NotNil(t, rem)
				require.True(t, mustUTC("2026-03-30T06:00:00Z").Equal(rem.ScheduledAt), "reminder at %s", rem.ScheduledAt.In(vienna))
				return
			}
			require.Empty(t, b.email.sent(), "respect: it waits like any other")
			require.True(t, mustUTC("2026-03-29T06:00:00Z").Equal(notifyJobs(t, b)[0].ScheduledAt))
		})
	}

	t.Run("ReminderDueOutsideMovesToTheStart", func(t *testing.T) {
		t.Parallel()
		// Created at 12:00 CEST the day before the clocks go back; the
		// reminder's offset lands it on 03:10 CET.
		clock := clockAt("2026-10-24T10:00:00Z")
		b := setup(t, clock, func(c *Config) { c.ReminderOffsets = []time.Duration{16*time.Hour + 10*time.Minute, 48 * time.Hour} })
		request(t, b, reauth.PriorityBulk)
		require.Len(t, b.email.sent(), 1)
		rem := notifyJobs(t, b)[1]
		require.NotNil(t, rem)
		require.True(t, mustUTC("2026-10-25T07:00:00Z").Equal(rem.ScheduledAt), "08:00 CET: %s", rem.ScheduledAt.In(vienna))

		// A reminder that runs late (a backlog until 21:00) waits for the
		// next morning instead of going out then.
		clock.set(mustUTC("2026-10-25T20:00:00Z"))
		res := workNotify(t, b, rem)
		require.Equal(t, river.EventKindJobSnoozed, res.EventKind)
		require.Len(t, b.email.sent(), 1)
		require.WithinDuration(t, time.Now().Add(11*time.Hour), res.Job.ScheduledAt, time.Minute, "snoozed until 08:00 the next day")
	})

	t.Run("TheUsersZone", func(t *testing.T) {
		t.Parallel()
		// 09:30 CEST in Vienna is 03:30 in New York. One user and device
		// per case, in one database.
		const now, nyStart = "2026-06-10T07:30:00Z", "2026-06-10T12:00:00Z"
		b := setup(t, clockAt(now))
		setTZ := func(t *testing.T, user, tz string) {
			_, err := store.UpsertContact(ctx, b.pool, unitOrg, user, store.ContactUpdate{Timezone: &tz})
			require.NoError(t, err)
		}
		setCountry := func(t *testing.T, user, country string) {
			_, err := b.pool.Exec(ctx, `INSERT INTO sync_user (org_id, user_id, country) VALUES ($1, $2, $3)`, unitOrg, user, country)
			require.NoError(t, err)
		}
		for i, c := range []struct {
			name  string
			setup func(t *testing.T, user string)
			start string // "": sent now
		}{
			{"Default", func(*testing.T, string) {}, ""},
			{"ContactTimezone", func(t *testing.T, u string) { setTZ(t, u, "America/New_York") }, nyStart},
			{"PoderoCountry", func(t *testing.T, u string) { setCountry(t, u, "US") }, nyStart},
			{"ContactBeforeCountry", func(t *testing.T, u string) { setTZ(t, u, "Europe/Vienna"); setCountry(t, u, "US") }, ""},
			{"UnknownCountryIsTheDefault", func(t *testing.T, u string) { setCountry(t, u, "Atlantis") }, ""},
		} {
			a := unitArgs()
			a.UserID = fmt.Sprintf("0b7e2a7e-1d2b-4c3d-8e9f-%012d", i)
			a.DeviceID = fmt.Sprintf("a2314723-06cc-4c2e-8819-%012d", i)
			c.setup(t, a.UserID)
			sent := len(b.email.sent())
			requestFor(t, b, a, reauth.PriorityBulk)
			if c.start == "" {
				require.Len(t, b.email.sent(), sent+1, c.name)
				require.NotContains(t, notifyJobsFor(t, b, a.DeviceID), 0, c.name)
				continue
			}
			require.Len(t, b.email.sent(), sent, c.name)
			require.True(t, mustUTC(c.start).Equal(notifyJobsFor(t, b, a.DeviceID)[0].ScheduledAt), c.name)
		}
	})
}
