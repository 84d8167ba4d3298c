package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/testdb"
)

// TestNoSSRF: the URLs a request carries are only ever handed to the user's
// browser; the service itself never calls them.
func TestNoSSRF(t *testing.T) {
	t.Parallel()
	var trapped atomic.Int32
	trap := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { trapped.Add(1) }))
	defer trap.Close()

	s := newService(t, testdb.NewURL(t))
	s.serve(t, "REDIRECT_HOSTS=http://"+trap.Listener.Addr().String())
	st := s.state(t)
	u := st.Orgs[0].Users[0]
	for _, d := range u.Devices {
		s.enqueue(t, st.Orgs[0].ID, u, d, fmt.Sprintf(`,"success_url":%q,"cancel_url":%q,"email":"someone@example.test"`,
			trap.URL+"/latest/meta-data", trap.URL+"/admin"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.mails.Wait(ctx, len(u.Devices))
	require.NoError(t, err)
	require.Zero(t, trapped.Load(), "the service called a URL from a request")
}
