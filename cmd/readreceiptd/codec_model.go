package main

// Hand decoders of the bodies of the model's endpoints (api_model.go), with
// the rules of codec.go: names matched exactly, else without case; null
// leaves a field as it is; unknown fields skipped after validation; a field
// named twice refused.

import (
	"errors"
	"strconv"
)

// strings decodes an array of strings (or null) into p. A null element is
// "".
func (d *jsonDecoder) strings(p *[]string) error {
	if isNull, err := d.null(); isNull || err != nil {
		return err
	}
	list := (*p)[:0]
	err := d.array(func() error {
		var s string
		if err := d.str(&s); err != nil {
			return err
		}
		list = append(list, s)
		return nil
	})
	*p = list
	return err
}

// integer64 decodes an int64 field into p: null leaves it unchanged.
func (d *jsonDecoder) integer64(p *int64) error {
	if isNull, err := d.null(); isNull || err != nil {
		return err
	}
	num, err := d.number()
	if err != nil {
		return err
	}
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil {
		return d.fail("not an integer that fits")
	}
	*p = n
	return nil
}

// decodeTop decodes one top-level object of b with field, or a null (which
// leaves the request as it is).
func decodeTop(b []byte, field func(d *jsonDecoder, s *seen, key []byte) error) error {
	d := &jsonDecoder{b: b}
	if isNull, err := d.null(); isNull || err != nil {
		return errors.Join(err, d.end())
	}
	var s seen
	if err := d.object(func(key []byte) error { return field(d, &s, key) }); err != nil {
		return err
	}
	return d.end()
}

// decodeReadTimesRequest decodes {"message":{...},"userIDList":[...]}.
func decodeReadTimesRequest(b []byte, req *readTimesRequest) error {
	return decodeTop(b, func(d *jsonDecoder, s *seen, key []byte) error {
		switch {
		case fieldIs(key, "message"):
			if err := s.mark(d, 0); err != nil {
				return err
			}
			return d.message(&req.Message)
		case fieldIs(key, "userIDList"):
			if err := s.mark(d, 1); err != nil {
				return err
			}
			return d.strings(&req.UserIDList)
		}
		return d.skip()
	})
}

// decodeMarkRequest decodes {"conversationID","thread","messageID","time"}.
func decodeMarkRequest(b []byte, req *markRequest) error {
	return decodeTop(b, func(d *jsonDecoder, s *seen, key []byte) error {
		switch {
		case fieldIs(key, "conversationID"):
			if err := s.mark(d, 0); err != nil {
				return err
			}
			return d.str(&req.ConversationID)
		case fieldIs(key, "thread"):
			if err := s.mark(d, 1); err != nil {
				return err
			}
			return d.str(&req.Thread)
		case fieldIs(key, "messageID"):
			if err := s.mark(d, 2); err != nil {
				return err
			}
			return d.str(&req.MessageID)
		case fieldIs(key, "time"):
			if err := s.mark(d, 3); err != nil {
				return err
			}
			return d.integer64(&req.Time)
		}
		return d.skip()
	})
}

// errNoPrivate is the refusal of a privacy body without its field.
var errNoPrivate = badRequest(`the body must be {"private": true} or {"private": false}`)

// decodePrivacyRequest decodes {"private": bool}; the field is required
// and may not be null.
func decodePrivacyRequest(b []byte, req *privacyJSON) error {
	var s seen
	err := decodeTop(b, func(d *jsonDecoder, ps *seen, key []byte) error {
		if !fieldIs(key, "private") {
			return d.skip()
		}
		if err := ps.mark(d, 0); err != nil {
			return err
		}
		if d.peek() == 'n' {
			return d.fail("private may not be null")
		}
		s = *ps
		return d.boolean(&req.Private)
	})
	if err != nil {
		return err
	}
	if s == 0 {
		return errNoPrivate
	}
	return nil
}
