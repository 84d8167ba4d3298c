package worker

import (
	"cmp"
	"context"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/podero"
)

// UserCacheTTL is how long an organization's user list is reused. Requests
// without an email address need the user's email from Podero; one listing
// serves every such request for the organization in that window.
const UserCacheTTL = 5 * time.Minute

// UserRefetchAfter is how old an organization's cached list must be before
// a user missing from it makes it be fetched again (at most once in that
// time per organization): a user added at Podero after the list was
// fetched is not taken for one without an email.
const UserRefetchAfter = 30 * time.Second

// UserCache holds each organization's user emails (user ID → email) and
// the users found by their external ID. One per process serves the
// workers (Config.Users) and the HTTP API's lookup of a request's
// external_user_id (httpapi.Config.FindUser, through ByExternalID), so
// that a lookup either made costs the other no Podero call. The zero
// value is ready to use.
type UserCache struct {
	mu    sync.Mutex
	orgs  map[string]userEntry
	group singleflight.Group
	// byExt holds users found by their external ID ("org/external ID" →
	// user). Only found users are kept: an ID unknown now may be created
	// at Podero a minute later, and a job cancelled for it would not be
	// tried again (an HTTP request answered 400 may be).
	byExt map[string]extEntry
	// now is the clock of the organization lists; nil is time.Now.
	now func() time.Time
	// refetchAfter is UserRefetchAfter unless set (tests).
	refetchAfter time.Duration
}

// maxExtEntries bounds UserCache.byExt.
const maxExtEntries = 100_000

type extEntry struct {
	user    podero.User
	fetched time.Time
}

// ByExternalID returns the organization's user whose external_user_id is
// extID, from the cache when found there within UserCacheTTL, else from
// p; a user deleted at Podero is not found (KindNotFound), like an
// unknown ID. Concurrent misses for one ID share one lookup.
func (c *UserCache) ByExternalID(ctx context.Context, p Podero, orgID, extID string) (podero.User, error) {
	key := orgID + "/" + extID
	c.mu.Lock()
	e, ok := c.byExt[key]
	c.mu.Unlock()
	if ok && c.since(e.fetched) <= UserCacheTTL {
		return e.user, nil
	}
	v, err, _ := c.group.Do("ext/"+key, func() (any, error) {
		u, err := p.UserByExternalID(ctx, orgID, extID)
		if err != nil {
			return nil, err
		}
		if u.DeletedAt != nil {
			return nil, &podero.Error{Kind: podero.KindNotFound, Op: podero.OpUserByExtID, Detail: "the user is deleted"}
		}
		c.mu.Lock()
		if c.byExt == nil || len(c.byExt) >= maxExtEntries {
			c.byExt = map[string]extEntry{} // bounded: start over
		}
		c.byExt[key] = extEntry{user: u, fetched: c.clock()}
		c.mu.Unlock()
		return u, nil
	})
	if err != nil {
		return podero.User{}, err
	}
	return v.(podero.User), nil
}

type userEntry struct {
	// emails holds every listed user: "" for one deleted or without a
	// usable email.
	emails  map[string]string
	fetched time.Time
}

// listTooFresh says a user is missing from a list fetched before the
// request was made and too recently to fetch again: come back after wait.
type listTooFresh struct{ wait time.Duration }

func (e *listTooFresh) Error() string {
	return "the user is not in the organization's user list yet; looking again in " + e.wait.String()
}

// email returns the user's email for a request made at requested: "" when
// the user has none, is deleted, or is not in the organization. A user
// missing from the cached list is only taken as not there when the list was
// fetched after the request was made; from an older list, the list is
// fetched again once it is UserRefetchAfter old, and until then a
// *listTooFresh says when to come back. Concurrent misses for one
// organization share one listing.
func (c *UserCache) email(ctx context.Context, p Podero, orgID, userID string, requested time.Time) (string, error) {
	id := strings.ToLower(userID)
	c.mu.Lock()
	e, ok := c.orgs[orgID]
	c.mu.Unlock()
	if !ok || c.since(e.fetched) > UserCacheTTL {
		var err error
		if e, err = c.fetchUsers(ctx, p, orgID, time.Time{}); err != nil {
			return "", err
		}
	}
	email, listed := e.emails[id]
	if listed || e.fetched.After(requested) {
		return email, nil
	}
	if age, after := c.since(e.fetched), cmp.Or(c.refetchAfter, UserRefetchAfter); age < after {
		return "", &listTooFresh{wait: after - age}
	}
	e, err := c.fetchUsers(ctx, p, orgID, e.fetched)
	if err != nil {
		return "", err
	}
	return e.emails[id], nil
}

// fetchUsers lists orgID's users and caches them, unless a list fetched
// after older is cached already (another caller refetched it meanwhile).
func (c *UserCache) fetchUsers(ctx context.Context, p Podero, orgID string, older time.Time) (userEntry, error) {
	v, err, _ := c.group.Do(orgID, func() (any, error) {
		c.mu.Lock()
		cached, ok := c.orgs[orgID]
		c.mu.Unlock()
		if ok && !older.IsZero() && cached.fetched.After(older) {
			return cached, nil
		}
		// From when it was asked for: a user made at Podero while it was
		// listed may be missing from it.
		start := c.clock()
		emails := map[string]string{}
		err := p.ForEachUser(ctx, orgID, func(u podero.User) error {
			email := ""
			if u.DeletedAt == nil && reauth.ValidateEmail(u.Email) == nil {
				email = u.Email
			}
			emails[strings.ToLower(u.ID)] = email
			return nil
		})
		if err != nil {
			return nil, err
		}
		e := userEntry{emails: emails, fetched: start}
		c.mu.Lock()
		if c.orgs == nil {
			c.orgs = map[string]userEntry{}
		}
		c.orgs[orgID] = e
		c.mu.Unlock()
		return e, nil
	})
	if err != nil {
		return userEntry{}, err
	}
	return v.(userEntry), nil
}

func (c *UserCache) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

func (c *UserCache) since(t time.Time) time.Duration { return c.clock().Sub(t) }
