package main

// A hand-written decoder for the bodies of the three hot endpoints
// (receipts, counts, member pages). encoding/json decodes them by
// reflection after a separate validity scan, which was a fifth of the
// server's CPU time on count calls. This decoder reads the same shapes in
// one pass, with encoding/json's rules for these types (field names
// matched exactly, else without case; null leaves a field as it is;
// unknown fields skipped after validation), and one rule more: a field
// named twice is refused, as it is ambiguous. Other bodies still go
// through encoding/json. A differential test holds the two to the same
// answers. A deeply nested unknown field (over maxSkipDepth) is refused
// too.

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonDecoder reads one JSON text from b. Its caller has already refused
// invalid UTF-8 and unpaired surrogate escapes (exactJSONText).
type jsonDecoder struct {
	b []byte
	i int
}

// errSyntax is the error of malformed JSON.
type errSyntax struct {
	msg string
	at  int
}

func (e *errSyntax) Error() string { return fmt.Sprintf("%s at offset %d", e.msg, e.at) }

func (d *jsonDecoder) fail(msg string) error { return &errSyntax{msg: msg, at: d.i} }

func (d *jsonDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, or 0 at the end.
func (d *jsonDecoder) peek() byte {
	d.space()
	if d.i >= len(d.b) {
		return 0
	}
	return d.b[d.i]
}

// literal consumes the literal word (true, false, null).
func (d *jsonDecoder) literal(word string) error {
	if !bytes.HasPrefix(d.b[d.i:], []byte(word)) {
		return d.fail("invalid literal")
	}
	d.i += len(word)
	return nil
}

// null consumes a null and reports whether there was one.
func (d *jsonDecoder) null() (bool, error) {
	if d.peek() != 'n' {
		return false, nil
	}
	return true, d.literal("null")
}

// end checks that nothing but white space follows the value.
func (d *jsonDecoder) end() error {
	if d.peek() != 0 {
		return d.fail("data after the top-level value")
	}
	return nil
}

// object reads an object, calling field for each member with the decoder
// placed at the member's value, which field must consume.
func (d *jsonDecoder) object(field func(key []byte) error) error {
	if d.peek() != '{' {
		return d.fail("expected an object")
	}
	d.i++
	if d.peek() == '}' {
		d.i++
		return nil
	}
	for {
		if d.peek() != '"' {
			return d.fail("expected a member name")
		}
		key, err := d.rawString()
		if err != nil {
			return err
		}
		if d.peek() != ':' {
			return d.fail("expected ':'")
		}
		d.i++
		if err := field(key); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return d.fail("expected ',' or '}'")
		}
	}
}

// array reads an array, calling elem with the decoder placed at each
// element, which elem must consume.
func (d *jsonDecoder) array(elem func() error) error {
	if d.peek() != '[' {
		return d.fail("expected an array")
	}
	d.i++
	if d.peek() == ']' {
		d.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return nil
		default:
			return d.fail("expected ',' or ']'")
		}
	}
}

// rawString reads a string and returns its decoded bytes, which alias b
// when the string holds no escape.
func (d *jsonDecoder) rawString() ([]byte, error) {
	if d.peek() != '"' {
		return nil, d.fail("expected a string")
	}
	d.i++
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			return s, nil
		case c == '\\':
			return d.escapedString(start)
		case c < 0x20:
			return nil, d.fail("control character in a string")
		}
		d.i++
	}
	return nil, d.fail("unterminated string")
}

// escapedString finishes a string that holds an escape; the string began
// at start and d.i is at its first backslash.
func (d *jsonDecoder) escapedString(start int) ([]byte, error) {
	out := make([]byte, 0, d.i-start+16)
	out = append(out, d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return out, nil
		case c < 0x20:
			return nil, d.fail("control character in a string")
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			break
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(d.b, d.i)
			if !ok {
				return nil, d.fail("invalid \\u escape")
			}
			d.i += 4
			if utf16.IsSurrogate(r) {
				// exactJSONText has made sure a low half follows.
				lo, ok := hex4(d.b, d.i+2)
				if !ok || d.i+1 >= len(d.b) || d.b[d.i] != '\\' || d.b[d.i+1] != 'u' {
					return nil, d.fail("unpaired surrogate escape")
				}
				r = utf16.DecodeRune(r, lo)
				if r == utf8.RuneError {
					return nil, d.fail("unpaired surrogate escape")
				}
				d.i += 6
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, d.fail("invalid escape")
		}
	}
	return nil, d.fail("unterminated string")
}

// str decodes a string field into p: null leaves it unchanged.
func (d *jsonDecoder) str(p *string) error {
	if isNull, err := d.null(); isNull || err != nil {
		return err
	}
	if d.peek() != '"' {
		return d.fail("expected a string")
	}
	b, err := d.rawString()
	if err != nil {
		return err
	}
	*p = string(b)
	return nil
}

// boolean decodes a bool field into p: null leaves it unchanged.
func (d *jsonDecoder) boolean(p *bool) error {
	switch d.peek() {
	case 'n':
		return d.literal("null")
	case 't':
		*p = true
		return d.literal("true")
	case 'f':
		*p = false
		return d.literal("false")
	}
	return d.fail("expected true or false")
}

// number consumes a number and returns its text.
func (d *jsonDecoder) number() ([]byte, error) {
	d.space()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.b) && d.b[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return nil, d.fail("invalid number")
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return nil, d.fail("invalid number")
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return nil, d.fail("invalid number")
		}
	}
	return d.b[start:d.i], nil
}

// integer decodes an int field into p: null leaves it unchanged; a number
// that is not an integer, or does not fit, is an error (as in
// encoding/json).
func (d *jsonDecoder) integer(p *int) error {
	if isNull, err := d.null(); isNull || err != nil {
		return err
	}
	num, err := d.number()
	if err != nil {
		return err
	}
	n, err := strconv.ParseInt(string(num), 10, 0)
	if err != nil {
		return d.fail("not an integer that fits")
	}
	*p = int(n)
	return nil
}

// skip consumes any value, checking its syntax.
func (d *jsonDecoder) skip() error {
	return d.skipDepth(0)
}

// maxSkipDepth bounds the nesting of skipped values. encoding/json allows
// 10000 levels, which lets each hostile request grow its goroutine's stack
// by megabytes; the SDK's message objects nest a few levels.
const maxSkipDepth = 64

func (d *jsonDecoder) skipDepth(depth int) error {
	if depth > maxSkipDepth {
		return d.fail("nested too deeply")
	}
	switch c := d.peek(); {
	case c == '{':
		return d.object(func([]byte) error { return d.skipDepth(depth + 1) })
	case c == '[':
		return d.array(func() error { return d.skipDepth(depth + 1) })
	case c == '"':
		_, err := d.rawString()
		return err
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		_, err := d.number()
		return err
	default:
		return d.fail("expected a value")
	}
}

// fieldIs reports whether the member name key names field: exactly, or
// else without regard to case, as encoding/json matches.
func fieldIs(key []byte, field string) bool {
	return string(key) == field || bytes.EqualFold(key, []byte(field))
}

// seen tracks the fields an object has named, to refuse one named twice.
type seen uint8

func (s *seen) mark(d *jsonDecoder, bit uint8) error {
	if *s&(1<<bit) != 0 {
		return d.fail("a field is named twice")
	}
	*s |= 1 << bit
	return nil
}

// message decodes a message object (or null) into m.
func (d *jsonDecoder) message(m *messageJSON) error {
	if isNull, err := d.null(); isNull || err != nil {
		return err
	}
	var s seen
	return d.object(func(key []byte) error {
		var err error
		switch {
		case fieldIs(key, "ID"):
			if err = s.mark(d, 0); err == nil {
				err = d.str(&m.ID)
			}
		case fieldIs(key, "conversationType"):
			if err = s.mark(d, 1); err == nil {
				err = d.str(&m.ConversationType)
			}
		case fieldIs(key, "to"):
			if err = s.mark(d, 2); err == nil {
				err = d.str(&m.To)
			}
		case fieldIs(key, "from"):
			if err = s.mark(d, 3); err == nil {
				err = d.str(&m.From)
			}
		case fieldIs(key, "needReadReceipt"):
			if err = s.mark(d, 4); err == nil {
				err = d.boolean(&m.NeedReadReceipt)
			}
		case fieldIs(key, "thread"):
			if err = s.mark(d, 5); err == nil {
				err = d.str(&m.Thread)
			}
		default:
			err = d.skip()
		}
		return err
	})
}

// decodeMessageList decodes {"messageList":[message...]} into req, whose
// list is empty and has zeroed capacity (getListRequest).
func decodeMessageList(b []byte, req *messageListRequest) error {
	d := &jsonDecoder{b: b}
	if isNull, err := d.null(); isNull || err != nil {
		return errors.Join(err, d.end()) // a null body leaves req as it is
	}
	var s seen
	err := d.object(func(key []byte) error {
		if !fieldIs(key, "messageList") {
			return d.skip()
		}
		if err := s.mark(d, 0); err != nil {
			return err
		}
		if isNull, err := d.null(); isNull || err != nil {
			req.MessageList = req.MessageList[:0]
			return err
		}
		return d.array(func() error {
			req.MessageList = append(req.MessageList, messageJSON{})
			return d.message(&req.MessageList[len(req.MessageList)-1])
		})
	})
	if err != nil {
		return err
	}
	return d.end()
}

// decodeMembersRequest decodes a member-page request into req, which is
// zero.
func decodeMembersRequest(b []byte, req *membersRequest) error {
	d := &jsonDecoder{b: b}
	if isNull, err := d.null(); isNull || err != nil {
		return errors.Join(err, d.end())
	}
	var s seen
	err := d.object(func(key []byte) error {
		var err error
		switch {
		case fieldIs(key, "message"):
			if err = s.mark(d, 0); err == nil {
				err = d.message(&req.Message)
			}
		case fieldIs(key, "filter"):
			if err = s.mark(d, 1); err == nil {
				err = d.integer(&req.Filter)
			}
		case fieldIs(key, "cursor"):
			if err = s.mark(d, 2); err == nil {
				err = d.str(&req.Cursor)
			}
		case fieldIs(key, "count"):
			if err = s.mark(d, 3); err == nil {
				err = d.integer(&req.Count)
			}
		default:
			err = d.skip()
		}
		return err
	})
	if err != nil {
		return err
	}
	return d.end()
}

// The answers of receipt and count calls, the most frequent, are encoded
// by hand too; a test holds them byte for byte to encoding/json's output
// (with HTML escaping off, as writeJSON sets it).

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json
// escapes it with HTML escaping off.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

// writeReceiptResults answers a receipt call: {"code":0,"data":
// {"messageList":[...]}}.
func writeReceiptResults(w http.ResponseWriter, list []receiptResultJSON) {
	jb := jsonBuffers.Get().(*jsonBuffer)
	b := append(jb.buf.AvailableBuffer()[:0], `{"code":0,"data":{"messageList":[`...)
	for i, r := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"ID":`...)
		b = appendString(b, r.ID)
		b = append(b, `,"recorded":`...)
		b = appendBool(b, r.Recorded)
		b = append(b, `,"code":`...)
		b = strconv.AppendInt(b, int64(r.Code), 10)
		b = append(b, `,"message":`...)
		b = appendString(b, r.Message)
		b = append(b, '}')
	}
	b = append(b, "]}}\n"...)
	writeBody(w, http.StatusOK, jb, b)
}

// writeReceiptInfos answers a count call.
func writeReceiptInfos(w http.ResponseWriter, list []receiptInfoJSON) {
	jb := jsonBuffers.Get().(*jsonBuffer)
	b := append(jb.buf.AvailableBuffer()[:0], `{"code":0,"data":{"messageList":[`...)
	for i, r := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"ID":`...)
		b = appendString(b, r.ID)
		b = append(b, `,"conversationType":`...)
		b = appendString(b, r.ConversationType)
		b = append(b, `,"readReceiptInfo":{"readCount":`...)
		b = strconv.AppendInt(b, int64(r.ReadReceiptInfo.ReadCount), 10)
		b = append(b, `,"unreadCount":`...)
		b = strconv.AppendInt(b, int64(r.ReadReceiptInfo.UnreadCount), 10)
		b = append(b, `,"isPeerRead":`...)
		b = appendBool(b, r.ReadReceiptInfo.IsPeerRead)
		b = append(b, `,"deliveredCount":`...)
		b = strconv.AppendInt(b, int64(r.ReadReceiptInfo.DeliveredCount), 10)
		b = append(b, `,"undeliveredCount":`...)
		b = strconv.AppendInt(b, int64(r.ReadReceiptInfo.UndeliveredCount), 10)
		b = append(b, `,"isPeerDelivered":`...)
		b = appendBool(b, r.ReadReceiptInfo.IsPeerDelivered)
		if ts := r.ReadReceiptInfo.Timestamp; ts != 0 {
			b = append(b, `,"timestamp":`...)
			b = strconv.AppendInt(b, ts, 10)
		}
		b = append(b, `},"code":`...)
		b = strconv.AppendInt(b, int64(r.Code), 10)
		b = append(b, `,"message":`...)
		b = appendString(b, r.Message)
		b = append(b, '}')
	}
	b = append(b, "]}}\n"...)
	writeBody(w, http.StatusOK, jb, b)
}
