package worker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/testdb"
)

// The organization, user and device of the worker unit tests.
const (
	unitOrg    = "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
	unitUser   = "0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
	unitDevice = "a2314723-06cc-4c2e-8819-118905579c7a"
	unitEmail  = "user@example.test"
	unitBase   = "https://reauth.example.test"
)

// fakePodero is the Partner API as the device worker sees it: AuthSession
// answers with the next scripted error, and a fresh session once the script
// is used up. It records every call.
type fakePodero struct {
	mu      sync.Mutex
	errs    []error  // AuthSession's next answers; nil entries: a session
	devices []string // the device of each AuthSession call, in order
	n       int
	listed  []podero.Device // what ListDevices answers
	lists   int             // ListDevices calls
}

func (f *fakePodero) AuthSession(_ context.Context, _, _ string, _ reauth.DeviceKind, deviceID string, _ podero.AuthSessionInput) (podero.AuthSession, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.devices = append(f.devices, deviceID)
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		if err != nil {
			return podero.AuthSession{}, err
		}
	}
	f.n++
	return podero.AuthSession{
		AuthenticationURL: fmt.Sprintf("https://connect.podero.test/connect/%d", f.n),
		DeviceID:          deviceID,
		SessionID:         fmt.Sprintf("5e000000-0000-4000-8000-%012d", f.n),
	}, nil
}

func (f *fakePodero) ForEachUser(context.Context, string, func(podero.User) error) error {
	return nil // no user list: requests in these tests name their email
}

func (f *fakePodero) UserByExternalID(context.Context, string, string) (podero.User, error) {
	return podero.User{}, &podero.Error{Kind: podero.KindNotFound, Op: podero.OpUserByExtID, Status: 404}
}

func (f *fakePodero) ListDevices(context.Context, string, string, reauth.DeviceKind) ([]podero.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	return append([]podero.Device(nil), f.listed...), nil
}

// calls is how many sessions were asked for.
func (f *fakePodero) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.devices)
}

// fakeSender is a channel: Send fails with the next scripted error, and
// records every message it was given, sent or not.
type fakeSender struct {
	mu   sync.Mutex
	errs []error
	msgs []notify.Message
}

func (f *fakeSender) Send(_ context.Context, m notify.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, m)
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return err
	}
	return nil
}

func (f *fakeSender) sent() []notify.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]notify.Message(nil), f.msgs...)
}

// unitBundle is one worker unit test: a real database, the fakes, and the
// Config the workers get.
type unitBundle struct {
	pool   *pgxpool.Pool
	podero *fakePodero
	email  *fakeSender
	logs   *bytes.Buffer
	cfg    Config
}

func newUnitBundle(t *testing.T, opts ...func(*Config)) *unitBundle {
	t.Helper()
	b := &unitBundle{pool: testdb.New(t), podero: &fakePodero{}, email: &fakeSender{}, logs: &bytes.Buffer{}}
	signer, err := link.NewSigner(bytes.Repeat([]byte("k"), 32))
	require.NoError(t, err)
	b.cfg = Config{
		Pool: b.pool, Podero: b.podero, Email: b.email, Links: signer, PublicBaseURL: unitBase,
		LinkTTL: time.Hour, Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: b.logs}, nil)),
	}
	for _, o := range opts {
		o(&b.cfg)
	}
	b.cfg = b.cfg.withDefaults()
	require.NoError(t, b.cfg.validate())
	return b
}

func (b *unitBundle) deviceWorker() *DeviceWorker {
	return &DeviceWorker{cfg: b.cfg, users: &UserCache{refetchAfter: b.cfg.UserRefetchAfter}}
}

func (b *unitBundle) notifyWorker() *NotifyWorker { return &NotifyWorker{cfg: b.cfg} }

// tx begins the transaction River's test worker keeps the job row in
// (the workers write through the pool); it is rolled back at cleanup.
func (b *unitBundle) tx(t *testing.T) pgx.Tx {
	t.Helper()
	tx, err := b.pool.Begin(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

// committed runs work in a transaction committed after it, so that what
// follows sees the job's row as River left it.
func (b *unitBundle) committed(t *testing.T, work func(tx pgx.Tx) (*rivertest.WorkResult, error)) (*rivertest.WorkResult, error) {
	t.Helper()
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	res, err := work(tx)
	require.NoError(t, tx.Commit(ctx))
	return res, err
}

func unitArgs() reauth.DeviceArgs {
	return reauth.DeviceArgs{OrgID: unitOrg, UserID: unitUser, DeviceKind: reauth.Inverter, DeviceID: unitDevice, Email: unitEmail}
}

func (b *unitBundle) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), q, args...).Scan(&n))
	return n
}

// riverConfig is the service's retry policy and attempts, for River's test
// worker.
func (b *unitBundle) riverConfig() *river.Config {
	return &river.Config{RetryPolicy: &RetryPolicy{Base: b.cfg.RetryBase, Cap: b.cfg.RetryCap}, MaxAttempts: b.cfg.MaxAttempts}
}

// deviceTestWorker runs reauth_device jobs as River would, one at a time.
func (b *unitBundle) deviceTestWorker(t *testing.T) *rivertest.Worker[reauth.DeviceArgs, pgx.Tx] {
	return rivertest.NewWorker(t, riverpgxv5.New(b.pool), b.riverConfig(), b.deviceWorker())
}

// notifyTestWorker runs reauth_notify jobs as River would, one at a time.
func (b *unitBundle) notifyTestWorker(t *testing.T) *rivertest.Worker[reauth.NotifyArgs, pgx.Tx] {
	return rivertest.NewWorker(t, riverpgxv5.New(b.pool), b.riverConfig(), b.notifyWorker())
}

// session makes the device's session the way a request does, by working
// a reauth_device job, and returns its ID; its first message is sent.
func (b *unitBundle) session(t *testing.T) int64 {
	t.Helper()
	ctx := context.Background()
	tx := b.tx(t)
	res, err := b.deviceTestWorker(t).Work(ctx, t, tx, unitArgs(), nil)
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	var id int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id FROM auth_session WHERE job_id = $1`, res.Job.ID).Scan(&id))
	require.NoError(t, tx.Commit(ctx))
	return id
}

// retry is an operator's retry of a finished job (River's JobRetry, as
// `reauth jobs retry` does it), in tx.
func (b *unitBundle) retry(t *testing.T, tx pgx.Tx, id int64) *rivertype.JobRow {
	t.Helper()
	rc, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{})
	require.NoError(t, err)
	job, err := rc.JobRetryTx(context.Background(), tx, id)
	require.NoError(t, err)
	return job
}

// reminders lists the reauth_notify jobs of session, in order.
func (b *unitBundle) reminders(t *testing.T, session int64) []*rivertype.JobRow {
	t.Helper()
	rc, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{})
	require.NoError(t, err)
	res, err := rc.JobList(context.Background(), river.NewJobListParams().Kinds(reauth.NotifyArgs{}.Kind()).
		Where("args ->> 'session_id' = @session", river.NamedArgs{"session": fmt.Sprint(session)}).First(100))
	require.NoError(t, err)
	return res.Jobs
}
