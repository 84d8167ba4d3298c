package strictjson

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

type body struct {
	Name  string   `json:"name"`
	Count int      `json:"count,omitempty"`
	Tags  []string `json:"tags"`
}

func TestDecode(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in      string
		problem Problem
		msg     string
	}{
		{`{"name":"a","count":1,"tags":["x"]}`, 0, ""},
		{``, Empty, "not valid JSON"},
		{`{"name":`, Syntax, "not valid JSON"},
		{`[1]`, NotObject, "must be a JSON object, not array"},
		{`{"Name":"a"}`, UnknownField, `unknown field "Name"`},
		{`{"name":"a","name":"b"}`, RepeatedField, `field "name" given twice`},
		{`{"count":"1"}`, WrongType, `field "count" must be a int, not string`},
		{`{"tags":1}`, WrongType, `field "tags" must be a slice, not number`},
		{`{} {}`, Trailing, "trailing data after the object"},
	} {
		var v body
		err := Decode([]byte(tt.in), &v)
		if tt.problem == 0 {
			require.NoError(t, err, tt.in)
			continue
		}
		var e *Error
		require.True(t, errors.As(err, &e), tt.in)
		require.Equal(t, tt.problem, e.Problem, tt.in)
		require.Equal(t, tt.msg, err.Error(), tt.in)
	}
}
