package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// codecSeeds are bodies of the three hot endpoints, valid and not.
var codecSeeds = []string{
	`{"messageList":[{"ID":"m1","conversationType":"GROUP","to":"g","from":"alice"}]}`,
	`{"messageList":[{"ID":"m1","conversationType":"C2C","to":"bob","from":"alice","needReadReceipt":true,"payload":{"text":"hi","n":[1,2.5e3,-0,null,true,false,{}]},"time":1700000000}]}`,
	`{"messageList":[{"ID":"a\"b\\c\/d\n\u00e9\ud83d\ude00","conversationType":"GROUP","to":"g"}, null, {"id":"x","TO":"y"}]}`,
	`{"messageList":null,"other":{"a":[[[]]]}}`,
	` { "messageList" : [ ] } `,
	`{"message":{"ID":"m1","conversationType":"GROUP","to":"g","from":"s"},"filter":1,"cursor":"abc","count":50}`,
	`{"message":null,"filter":-0,"count":null,"cursor":null}`,
	`{"filter":1.5}`,
	`{"count":1e2}`,
	`{"count":99999999999999999999}`,
	`{"messageList":[{"ID":1}]}`,
	`{"messageList":[{"needReadReceipt":"true"}]}`,
	`{"messageList":{"ID":"x"}}`,
	`{"messageList":[1]}`,
	`[1,2]`,
	`"s"`,
	`null`,
	`nul`,
	`{"a":01}`,
	`{"a":tru}`,
	`{"a":"\x"}`,
	`{"a":"tab	inside"}`,
	`{"a" "b"}`,
	`{"a":1,}`,
	`{"messageList":[{"ID":"m1"},]}`,
	`{"messageList":[]}{}`,
	`{"ID":"x","ID":"y"}`,
	`{"messageList":[{"ID":"x","id":"y"}]}`,
	`{"messageList":[],"messageList":[]}`,
	`{"message":{"ID":"m1","conversationType":"GROUP","to":"g","thread":"t"},"userIDList":["bob",null,"c\u00e9"]}`,
	`{"userIDList":null,"USERIDLIST":[]}`,
	`{"userIDList":[1]}`,
	`{"conversationID":"GROUPg","thread":"t","messageID":"m1","time":1764621000123}`,
	`{"conversationid":"C2Cbob","Time":-0,"time":null}`,
	`{"time":1.5}`,
	`{"time":99999999999999999999}`,
	`{"private":true}`,
	`{"private":null}`,
}

// agree checks that decodeMessageList and decodeMembersRequest answer
// body as encoding/json does: the same values when both accept, a
// refusal when it refuses. They may refuse more in one case only: a field
// named twice (encoding/json takes the last).
func agree(t *testing.T, body []byte) {
	t.Helper()
	if !exactJSONText(body) || len(bytes.TrimSpace(body)) == 0 {
		return // refused before either decoder runs
	}
	twice := func(err error) bool {
		var se *errSyntax
		return errors.As(err, &se) && (se.msg == "a field is named twice" || se.msg == "nested too deeply")
	}
	got := getListRequest()
	defer putListRequest(got)
	errOurs := decodeMessageList(body, got)
	var want messageListRequest
	errStd := json.Unmarshal(body, &want)
	switch {
	case errOurs == nil && errStd != nil:
		t.Errorf("list %q: accepted; encoding/json refuses it: %v", body, errStd)
	case errOurs != nil && errStd == nil && !twice(errOurs):
		t.Errorf("list %q: refused (%v); encoding/json accepts it", body, errOurs)
	case errOurs == nil && len(got.MessageList)+len(want.MessageList) > 0 && !reflect.DeepEqual(got.MessageList, want.MessageList):
		t.Errorf("list %q: decoded %+v; encoding/json %+v", body, got.MessageList, want.MessageList)
	}
	var gotM, wantM membersRequest
	errOurs = decodeMembersRequest(body, &gotM)
	errStd = json.Unmarshal(body, &wantM)
	switch {
	case errOurs == nil && errStd != nil:
		t.Errorf("members %q: accepted; encoding/json refuses it: %v", body, errStd)
	case errOurs != nil && errStd == nil && !twice(errOurs):
		t.Errorf("members %q: refused (%v); encoding/json accepts it", body, errOurs)
	case errOurs == nil && gotM != wantM:
		t.Errorf("members %q: decoded %+v; encoding/json %+v", body, gotM, wantM)
	}
	var gotT, wantT readTimesRequest
	errOurs = decodeReadTimesRequest(body, &gotT)
	errStd = json.Unmarshal(body, &wantT)
	switch {
	case errOurs == nil && errStd != nil:
		t.Errorf("read times %q: accepted; encoding/json refuses it: %v", body, errStd)
	case errOurs != nil && errStd == nil && !twice(errOurs):
		t.Errorf("read times %q: refused (%v); encoding/json accepts it", body, errOurs)
	case errOurs == nil && (gotT.Message != wantT.Message || !slices.Equal(gotT.UserIDList, wantT.UserIDList)):
		t.Errorf("read times %q: decoded %+v; encoding/json %+v", body, gotT, wantT)
	}
	var gotK, wantK markRequest
	errOurs = decodeMarkRequest(body, &gotK)
	errStd = json.Unmarshal(body, &wantK)
	switch {
	case errOurs == nil && errStd != nil:
		t.Errorf("mark %q: accepted; encoding/json refuses it: %v", body, errStd)
	case errOurs != nil && errStd == nil && !twice(errOurs):
		t.Errorf("mark %q: refused (%v); encoding/json accepts it", body, errOurs)
	case errOurs == nil && gotK != wantK:
		t.Errorf("mark %q: decoded %+v; encoding/json %+v", body, gotK, wantK)
	}
	// The privacy body refuses more: its field is required and not null.
	var gotP, wantP privacyJSON
	errOurs = decodePrivacyRequest(body, &gotP)
	errStd = json.Unmarshal(body, &wantP)
	if errOurs == nil && (errStd != nil || gotP != wantP) {
		t.Errorf("privacy %q: decoded %+v; encoding/json %+v, %v", body, gotP, wantP, errStd)
	}
}

func TestDecoderSeeds(t *testing.T) {
	for _, s := range codecSeeds {
		agree(t, []byte(s))
	}
	// The seeds reach both sides: some are taken, some refused.
	var taken, refused int
	for _, s := range codecSeeds {
		if decodeMessageList([]byte(s), getListRequest()) == nil {
			taken++
		} else {
			refused++
		}
	}
	if taken < 4 || refused < 10 {
		t.Fatalf("seeds: %d taken, %d refused", taken, refused)
	}
}

// TestDecoderMatchesEncodingJSON mutates the seeds at random (with a fixed
// seed, so that a failure repeats) and holds the decoder to encoding/json
// on every mutant.
func TestDecoderMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "{}[]\",:\\ ntfrue0123456789-+.eEu\"aID\t\n"
	mutants := 30000
	if testing.Short() {
		mutants = 3000
	}
	for range mutants {
		b := []byte(codecSeeds[rng.IntN(len(codecSeeds))])
		for range 1 + rng.IntN(3) {
			if len(b) == 0 {
				break
			}
			i := rng.IntN(len(b))
			c := alphabet[rng.IntN(len(alphabet))]
			switch rng.IntN(4) {
			case 0:
				b[i] = c
			case 1:
				b = append(b[:i], append([]byte{c}, b[i:]...)...)
			case 2:
				b = append(b[:i], b[i+1:]...)
			default:
				j := i + rng.IntN(len(b)-i)
				b = append(b[:j], append(bytes.Clone(b[i:j]), b[j:]...)...)
			}
		}
		agree(t, b)
		if t.Failed() {
			return
		}
	}
}

func TestDecoderNestingBound(t *testing.T) {
	nest := func(n int) []byte {
		return []byte(`{"messageList":[{"ID":"m","payload":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}]}`)
	}
	if err := decodeMessageList(nest(maxSkipDepth), getListRequest()); err != nil {
		t.Fatalf("%d levels: %v", maxSkipDepth, err)
	}
	if err := decodeMessageList(nest(maxSkipDepth+2), getListRequest()); err == nil {
		t.Fatalf("%d levels accepted", maxSkipDepth+2)
	}
}

func FuzzDecoders(f *testing.F) {
	for _, s := range codecSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { agree(t, body) })
}

// TestEncodersMatchEncodingJSON holds the hand encoders byte for byte to
// writeOK's encoding/json output, on strings of every awkward kind.
func TestEncodersMatchEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"", "a", "m001", `"`, `\`, "/", "<>&", "\x00", "\x1f", "\x7f", "\b\f\n\r\t", "é", "😀",
		"\u2028", "\u2029", "\xff", "\xed\xa0\x80", "\ufffd", "readreceipt: no receipt info", " "}
	str := func() string {
		var sb strings.Builder
		for range rng.IntN(4) {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return sb.String()
	}
	encode := func(write func(http.ResponseWriter)) string {
		w := &discardBody{h: http.Header{}}
		write(w)
		return w.b.String()
	}
	for range 2000 {
		var results []receiptResultJSON
		var infos []receiptInfoJSON
		for range rng.IntN(4) {
			results = append(results, receiptResultJSON{ID: str(), Recorded: rng.IntN(2) == 0, Code: rng.IntN(100000) - 10, Message: str()})
			infos = append(infos, receiptInfoJSON{ID: str(), ConversationType: str(),
				ReadReceiptInfo: readReceiptInfoJSON{ReadCount: rng.IntN(1 << 30), UnreadCount: rng.IntN(3), IsPeerRead: rng.IntN(2) == 0,
					DeliveredCount: rng.IntN(1 << 20), UndeliveredCount: rng.IntN(5), IsPeerDelivered: rng.IntN(2) == 0,
					Timestamp: []int64{0, 1, 1764621000, -5}[rng.IntN(4)]},
				Code: rng.IntN(100000), Message: str()})
		}
		if results == nil {
			results, infos = []receiptResultJSON{}, []receiptInfoJSON{}
		}
		got := encode(func(w http.ResponseWriter) { writeReceiptResults(w, results) })
		want := encode(func(w http.ResponseWriter) { writeOK(w, messageListResponse[receiptResultJSON]{MessageList: results}) })
		if got != want {
			t.Fatalf("receipt results %+v:\n got %q\nwant %q", results, got, want)
		}
		got = encode(func(w http.ResponseWriter) { writeReceiptInfos(w, infos) })
		want = encode(func(w http.ResponseWriter) { writeOK(w, messageListResponse[receiptInfoJSON]{MessageList: infos}) })
		if got != want {
			t.Fatalf("receipt infos %+v:\n got %q\nwant %q", infos, got, want)
		}
	}
}

// discardBody is a ResponseWriter that keeps the body.
type discardBody struct {
	h http.Header
	b bytes.Buffer
}

func (w *discardBody) Header() http.Header         { return w.h }
func (w *discardBody) WriteHeader(int)             {}
func (w *discardBody) Write(p []byte) (int, error) { return w.b.Write(p) }
