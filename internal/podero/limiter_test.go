package podero

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPurposeOf: what a call is for follows from its operation, its class
// and an explicit purpose, in that order of precedence (a token fetch is
// always a token fetch).
func TestPurposeOf(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	op := func(ctx context.Context, op string) context.Context { return context.WithValue(ctx, opKey{}, op) }
	bulk, sync := WithClass(ctx, ClassBulk), WithClass(ctx, ClassSync)
	renewal := WithPurpose(ctx, PurposeRenewal)
	for _, tc := range []struct {
		ctx  context.Context
		want string
	}{
		{op(ctx, OpAuthSession), PurposeRequest},
		{op(bulk, OpAuthSession), PurposeSweep},
		{op(renewal, OpAuthSession), PurposeRenewal},
		{op(ctx, OpListUsers), PurposeLookup},
		{op(bulk, OpUserByExtID), PurposeLookup},
		{op(sync, OpListUsers), PurposeSync},
		{op(sync, OpListDevices), PurposeSync},
		{op(renewal, OpToken), PurposeToken},
		{op(bulk, OpToken), PurposeToken},
	} {
		op, _ := tc.ctx.Value(opKey{}).(string)
		require.Equal(t, tc.want, PurposeOf(tc.ctx), "%s in class %s", op, ClassOf(tc.ctx))
	}
	require.Equal(t, ClassInteractive, ClassOf(ctx), "interactive by default")
}
