// Package strictjson decodes one JSON object strictly, for job args and the
// HTTP API's bodies alike: keys spelled exactly as the struct's JSON fields
// and given once, no unknown fields, the right types, nothing after the
// object. What is wrong comes back as an *Error, which its callers word for
// their readers (a job's error, an HTTP 400).
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// Problem is what kind of thing is wrong with a document.
type Problem int

// The problems Decode reports.
const (
	// Empty: there is no JSON value at all.
	Empty Problem = iota + 1
	// Syntax: the document is not JSON (or ends early).
	Syntax
	// Invalid: the decoder refused it for another reason.
	Invalid
	// NotObject: the value is not an object (Got names what it is).
	NotObject
	// UnknownField: a key that is not one of the struct's JSON fields, or
	// not spelled exactly as one (Field).
	UnknownField
	// RepeatedField: a key given twice (Field).
	RepeatedField
	// WrongType: a field's value has the wrong type (Field, Want, Got).
	WrongType
	// Trailing: something follows the object.
	Trailing
)

// Error is what Decode found wrong. Its message is the job-args wording
// ("field "x" must be a string, not number"); callers with other readers
// word it from the fields.
type Error struct {
	Problem Problem
	Field   string       // UnknownField, RepeatedField, WrongType: the key
	Want    reflect.Type // WrongType: the field's Go type
	Got     string       // NotObject, WrongType: the JSON value's kind ("number", "array", ...)
}

func (e *Error) Error() string {
	switch e.Problem {
	case NotObject:
		return "must be a JSON object, not " + e.Got
	case UnknownField:
		return fmt.Sprintf("unknown field %q", e.Field)
	case RepeatedField:
		return fmt.Sprintf("field %q given twice", e.Field)
	case WrongType:
		return fmt.Sprintf("field %q must be a %s, not %s", e.Field, e.Want.Kind(), e.Got)
	case Trailing:
		return "trailing data after the object"
	}
	return "not valid JSON"
}

// Decode decodes the one JSON object in b into the struct v points to,
// strictly (see the package doc); any error is an *Error.
func Decode(b []byte, v any) error {
	if err := ExactKeys(b, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			return &Error{Problem: Trailing}
		}
		return nil
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return &Error{Problem: Empty}
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Problem: Syntax}
	case errors.As(err, &typ) && typ.Field == "":
		return &Error{Problem: NotObject, Got: typ.Value}
	case errors.As(err, &typ):
		return &Error{Problem: WrongType, Field: typ.Field, Want: typ.Type, Got: typ.Value}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return &Error{Problem: UnknownField, Field: strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)}
	}
	return &Error{Problem: Invalid}
}

// ExactKeys rejects a JSON object whose keys are not spelled exactly as the
// JSON fields of the struct v points to, or repeat (an *Error): Go's decoder
// would match "DEVICE_ID" case-insensitively and keep the last of two, while
// River's unique key and SQL read the exact key. Anything that is not an
// object passes, for the decoder to refuse.
func ExactKeys(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil // not an object: the decoder says so
	}
	known := map[string]bool{}
	t := reflect.TypeOf(v).Elem()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			known[name] = true
		}
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := tok.(string)
		if !known[key] {
			return &Error{Problem: UnknownField, Field: key}
		}
		if seen[key] {
			return &Error{Problem: RepeatedField, Field: key}
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return nil
}
