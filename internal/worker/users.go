package worker

import (
	"context"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/reauth/reauth"
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
