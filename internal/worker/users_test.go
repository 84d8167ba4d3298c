package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/podero"
)

// fakeUsers is a Podero whose organization's users can change between
// listings, and that counts them.
type fakeUsers struct {
	Podero
	mu     sync.Mutex
	users  []podero.User
	listed int
}

func (f *fakeUsers) ForEachUser(_ context.Context, _ string, fn func(podero.User) error) error {
	f.mu.Lock()
	users := append([]podero.User(nil), f.users...)
	f.listed++
	f.mu.Unlock()
	for _, u := range users {
		if err := fn(u); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeUsers) add(u podero.User) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users = append(f.users, u)
}

func (f *fakeUsers) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.listed
}

// TestUserCacheNewUser: a user missing from the cached list is not taken
// for one without an email for the list's TTL. A request made after the
// list was fetched waits (listTooFresh) until the list may be fetched again
// (at most once per UserRefetchAfter per organization), and then gets the
// user's email; a request made before the list was fetched takes its
// answer.
func TestUserCacheNewUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const org = "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
	ann := podero.User{ID: "0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", Email: "ann@example.com"}
	bob := podero.User{ID: "1c8f3b8f-2e3c-4d4e-9f0a-1b2c3d4e5f60", Email: "bob@example.com"}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	p := &fakeUsers{users: []podero.User{ann}}
	c := &UserCache{now: clock}

	email, err := c.email(ctx, p, org, ann.ID, now)
	require.NoError(t, err)
	require.Equal(t, ann.Email, email)
	require.Equal(t, 1, p.count())

	// Bob is added at Podero; a request for him comes 10 s later.
	now = now.Add(10 * time.Second)
	p.add(bob)
	_, err = c.email(ctx, p, org, bob.ID, now)
	var fresh *listTooFresh
	require.True(t, errors.As(err, &fresh), "not \"\": %v", err)
	require.Equal(t, UserRefetchAfter-10*time.Second, fresh.wait)
	require.Equal(t, 1, p.count(), "not fetched again before UserRefetchAfter")

	// Come back when the list may be fetched again: Bob's email.
	requested := now
	now = now.Add(fresh.wait)
	email, err = c.email(ctx, p, org, bob.ID, requested)
	require.NoError(t, err)
	require.Equal(t, bob.Email, email)
	require.Equal(t, 2, p.count())

	// A user Podero does not know, asked for before the list was fetched:
	// the list's answer stands, no more listings.
	listed := now
	now = now.Add(time.Second)
	for range 3 {
		email, err = c.email(ctx, p, org, "2d9a4c9a-3f4d-4e5f-8a1b-2c3d4e5f6071", listed.Add(-time.Second))
		require.NoError(t, err)
		require.Empty(t, email)
	}
	require.Equal(t, 2, p.count())

	// Asked for after the list was fetched, once it is UserRefetchAfter
	// old: one more listing (bounded: every caller shares it), then "".
	now = now.Add(UserRefetchAfter)
	for range 3 {
		email, err = c.email(ctx, p, org, "2d9a4c9a-3f4d-4e5f-8a1b-2c3d4e5f6071", listed.Add(time.Second))
		require.NoError(t, err)
		require.Empty(t, email)
	}
	require.Equal(t, 3, p.count())

	// Deleted users and unusable addresses are listed, with no email.
	gone := time.Now()
	p.add(podero.User{ID: "3e0b5d0b-4a5e-4f6a-9b2c-3d4e5f607182", Email: "carl@example.com", DeletedAt: &gone})
	now = now.Add(UserCacheTTL + time.Second)
	email, err = c.email(ctx, p, org, "3e0b5d0b-4a5e-4f6a-9b2c-3d4e5f607182", now.Add(-time.Hour))
	require.NoError(t, err)
	require.Empty(t, email)
	require.Equal(t, 4, p.count(), "the TTL expired: fetched once, known from it")
}

// fakeExtUsers is a Podero that finds users by external ID and counts the
// lookups.
type fakeExtUsers struct {
	Podero
	mu     sync.Mutex
	users  map[string]podero.User // external ID → user
	lookup int
}

func (f *fakeExtUsers) UserByExternalID(_ context.Context, _, ext string) (podero.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookup++
	u, ok := f.users[ext]
	if !ok {
		return podero.User{}, &podero.Error{Kind: podero.KindNotFound, Op: podero.OpUserByExtID, Detail: "404"}
	}
	return u, nil
}

func (f *fakeExtUsers) set(ext string, u podero.User) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[ext] = u
}

func (f *fakeExtUsers) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookup
}

// TestUserCacheByExternalID: a user found by external ID is reused for
// UserCacheTTL (one lookup for any number of requests), then looked up
// again; an unknown ID is not cached (the user may be created at Podero
// the next minute); a deleted user is not found and not cached; each
// organization has its own entries.
func TestUserCacheByExternalID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const org, org2 = "6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", "7a2d3b8f-2e3c-4d4e-9f0a-1b2c3d4e5f60"
	ann := podero.User{ID: "0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", Email: "ann@example.com", ExternalUserID: "crm-1"}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	p := &fakeExtUsers{users: map[string]podero.User{"crm-1": ann}}
	c := &UserCache{now: func() time.Time { return now }}
	notFound := func(err error) bool {
		pe, ok := podero.AsError(err)
		return ok && pe.Kind == podero.KindNotFound
	}

	// Miss, then hits.
	for range 3 {
		u, err := c.ByExternalID(ctx, p, org, "crm-1")
		require.NoError(t, err)
		require.Equal(t, ann, u)
	}
	require.Equal(t, 1, p.count(), "one lookup, then the cache")
	now = now.Add(UserCacheTTL)
	_, err := c.ByExternalID(ctx, p, org, "crm-1")
	require.NoError(t, err)
	require.Equal(t, 1, p.count(), "still fresh at UserCacheTTL")

	// Another organization's same external ID is its own lookup.
	_, err = c.ByExternalID(ctx, p, org2, "crm-1")
	require.NoError(t, err)
	require.Equal(t, 2, p.count())

	// Expired: looked up again, and Podero's newer answer is taken.
	now = now.Add(time.Second)
	ann2 := ann
	ann2.Email = "ann@new.example.com"
	p.set("crm-1", ann2)
	u, err := c.ByExternalID(ctx, p, org, "crm-1")
	require.NoError(t, err)
	require.Equal(t, ann2, u)
	require.Equal(t, 3, p.count())

	// Unknown: not found each time, never cached; once Podero has the
	// user, found at once.
	for range 2 {
		_, err = c.ByExternalID(ctx, p, org, "crm-2")
		require.True(t, notFound(err), "%v", err)
	}
	require.Equal(t, 5, p.count(), "a not-found answer is not cached")
	bob := podero.User{ID: "1c8f3b8f-2e3c-4d4e-9f0a-1b2c3d4e5f60", Email: "bob@example.com", ExternalUserID: "crm-2"}
	p.set("crm-2", bob)
	u, err = c.ByExternalID(ctx, p, org, "crm-2")
	require.NoError(t, err)
	require.Equal(t, bob, u)
	require.Equal(t, 6, p.count())

	// Deleted at Podero: not found, and not cached.
	gone := now
	p.set("crm-3", podero.User{ID: "3e0b5d0b-4a5e-4f6a-9b2c-3d4e5f607182", ExternalUserID: "crm-3", DeletedAt: &gone})
	for range 2 {
		_, err = c.ByExternalID(ctx, p, org, "crm-3")
		require.True(t, notFound(err), "%v", err)
	}
	require.Equal(t, 8, p.count())
}
