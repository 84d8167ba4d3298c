package worker

import (
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

// userCache holds each organization's user emails (user ID → email).
type userCache struct {
	mu    sync.Mutex
	orgs  map[string]userEntry
	group singleflight.Group
	// byExt holds users found by their external ID ("org/external ID" →
	// user). Only found users are kept: an ID unknown now may be created
	// at Podero a minute later.
	byExt map[string]extEntry
}

// maxExtEntries bounds userCache.byExt.
const maxExtEntries = 100_000

type extEntry struct {
	user    podero.User
	fetched time.Time
}

// byExternalID returns the organization's user whose external_user_id is
// extID; a user deleted at Podero is not found (KindNotFound), like an
// unknown ID. Concurrent misses for one ID share one lookup.
func (c *userCache) byExternalID(ctx context.Context, p Podero, orgID, extID string) (podero.User, error) {
	key := orgID + "/" + extID
	c.mu.Lock()
	e, ok := c.byExt[key]
	c.mu.Unlock()
	if ok && time.Since(e.fetched) <= UserCacheTTL {
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
		c.byExt[key] = extEntry{user: u, fetched: time.Now()}
		c.mu.Unlock()
		return u, nil
	})
	if err != nil {
		return podero.User{}, err
	}
	return v.(podero.User), nil
}

type userEntry struct {
	emails  map[string]string
	fetched time.Time
}

// email returns the user's email, "" when the user has none, is deleted, or
// is not in the organization. Concurrent misses for one organization share
// one listing.
func (c *userCache) email(ctx context.Context, p Podero, orgID, userID string) (string, error) {
	c.mu.Lock()
	e, ok := c.orgs[orgID]
	c.mu.Unlock()
	if !ok || time.Since(e.fetched) > UserCacheTTL {
		v, err, _ := c.group.Do(orgID, func() (any, error) {
			users, err := p.ListUsers(ctx, orgID)
			if err != nil {
				return nil, err
			}
			emails := make(map[string]string, len(users))
			for _, u := range users {
				if u.DeletedAt == nil && reauth.ValidateEmail(u.Email) == nil {
					emails[strings.ToLower(u.ID)] = u.Email
				}
			}
			e := userEntry{emails: emails, fetched: time.Now()}
			c.mu.Lock()
			if c.orgs == nil {
				c.orgs = map[string]userEntry{}
			}
			c.orgs[orgID] = e
			c.mu.Unlock()
			return e, nil
		})
		if err != nil {
			return "", err
		}
		e = v.(userEntry)
	}
	return e.emails[strings.ToLower(userID)], nil
}
