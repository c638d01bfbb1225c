package readreceipt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/memstore"
)

// The schema-3 image (testdata/schema3.txt) is a store written by the engine
// of schema 3, before the per-message version keys became per-version
// counters, with the answers that engine gave. Regenerate it only with an
// engine of that schema: go test -run TestGenSchema3 -gen-schema3.
var genSchema3 = flag.Bool("gen-schema3", false, "write testdata/schema3.txt with the engine under test")

const schema3Image = "testdata/schema3.txt"

// schema3Answers is what the image's engine answered, kept as its JSON
// encoding (json.Marshal sorts the maps' keys) to compare after the
// migration.
type schema3Answers struct {
	Receipts map[string][]ReceiptInfo // by conversation
	Pages    map[string]MemberPage    // by "conv/message/filter"
	Groups   map[string]GroupInfo
}

type schema3Fixture struct {
	refs   map[string][]MessageRef
	pages  []MemberListRequest
	groups []string
}

// buildSchema3 writes a store with what the layout change touches: group
// messages at several membership versions (one of them deleted, one sent
// by a non-member, one in a thread), a version whose only message was
// deleted, a second group, and a C2C conversation.
func buildSchema3(ctx context.Context, t *testing.T, e *Engine) schema3Fixture {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	users := func(from, to int) []string {
		var u []string
		for i := from; i < to; i++ {
			u = append(u, fmt.Sprintf("u%02d", i))
		}
		return u
	}
	fx := schema3Fixture{refs: map[string][]MessageRef{}, groups: []string{"g1", "g2"}}
	track := func(conv Conversation, id, sender, thread string) {
		must(e.TrackMessage(ctx, Message{Conversation: conv, ID: id, Sender: sender, Thread: thread}))
		fx.refs[conv.String()] = append(fx.refs[conv.String()], MessageRef{Conversation: conv, ID: id})
	}
	read := func(reader string, conv Conversation, ids ...string) {
		var refs []MessageRef
		for _, id := range ids {
			refs = append(refs, MessageRef{Conversation: conv, ID: id})
		}
		_, err := e.SendMessageReadReceipt(ctx, reader, refs)
		must(err)
	}
	g1, g2 := Group("g1"), Group("g2")
	must(e.CreateGroup(ctx, "g1", GroupWork, users(0, 10)))
	for i := range 12 {
		track(g1, fmt.Sprintf("a%02d", i), "u00", "")
	}
	track(g1, "t00", "u03", "th")
	track(g1, "x00", "outsider", "")
	for r := 1; r < 10; r++ {
		read(fmt.Sprintf("u%02d", r), g1, "a00", "a01", fmt.Sprintf("a%02d", r), "t00", "x00")
	}
	must(e.AddGroupMembers(ctx, "g1", users(10, 14)))
	track(g1, "b00", "u01", "")
	must(e.RemoveGroupMembers(ctx, "g1", []string{"u02", "u05"}))
	for i := range 6 {
		track(g1, fmt.Sprintf("c%02d", i), "u12", "")
	}
	read("u11", g1, "a00", "b00", "c00", "c01")
	read("u03", g1, "c00", "c02", "c05")
	must(e.DeleteMessage(ctx, MessageRef{Conversation: g1, ID: "b00"}))
	must(e.DeleteMessage(ctx, MessageRef{Conversation: g1, ID: "a03"}))
	fx.refs[g1.String()] = append(fx.refs[g1.String()], MessageRef{Conversation: g1, ID: "nope"})

	must(e.CreateGroup(ctx, "g2", GroupPublic, users(20, 25)))
	for i := range 4 {
		track(g2, fmt.Sprintf("m%d", i), "u20", "")
	}
	read("u21", g2, "m0", "m1", "m2")
	read("u22", g2, "m0")
	must(e.RemoveGroupMembers(ctx, "g2", []string{"u24"}))

	dm := C2C("u00", "u01")
	track(dm, "d0", "u00", "")
	track(dm, "d1", "u01", "")
	read("u01", dm, "d0")

	for _, id := range []string{"a00", "a05", "t00", "x00", "c00", "c03"} {
		for _, f := range []MemberFilter{FilterRead, FilterUnread} {
			fx.pages = append(fx.pages, MemberListRequest{Message: MessageRef{Conversation: g1, ID: id}, Filter: f, Count: 100})
		}
	}
	fx.pages = append(fx.pages, MemberListRequest{Message: MessageRef{Conversation: g2, ID: "m0"}, Filter: FilterUnread, Count: 100})
	return fx
}

func (fx schema3Fixture) answers(ctx context.Context, t *testing.T, e *Engine) schema3Answers {
	t.Helper()
	a := schema3Answers{Receipts: map[string][]ReceiptInfo{}, Pages: map[string]MemberPage{}, Groups: map[string]GroupInfo{}}
	for conv, refs := range fx.refs {
		infos, err := e.GetMessageReadReceiptList(ctx, AsAdmin(), refs)
		if err != nil {
			t.Fatal(err)
		}
		a.Receipts[conv] = infos
	}
	for _, req := range fx.pages {
		p, err := e.GetGroupMessageReadMemberList(ctx, AsAdmin(), req)
		if err != nil {
			t.Fatal(err)
		}
		a.Pages[fmt.Sprintf("%s/%s/%d", req.Message.Conversation, req.Message.ID, req.Filter)] = p
	}
	for _, gid := range fx.groups {
		g, err := e.GetGroup(ctx, gid)
		if err != nil {
			t.Fatal(err)
		}
		a.Groups[gid] = g
	}
	return a
}

var migrateOpts = []Option{WithRetention(0), WithSweepInterval(0)}

func TestGenSchema3(t *testing.T) {
	if !*genSchema3 {
		t.Skip("only with -gen-schema3")
	}
	ctx := context.Background()
	st := memstore.New()
	e, err := Open(st, migrateOpts...)
	if err != nil {
		t.Fatal(err)
	}
	fx := buildSchema3(ctx, t, e)
	ans := fx.answers(ctx, t, e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	js, err := json.Marshal(ans)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&out, "# a schema-3 store (key value, hex) and its engine's answers; see migrate_test.go\nanswers %s\n", js)
	err = st.Scan(ctx, nil, nil, func(k, v []byte) bool {
		fmt.Fprintf(&out, "%x %x\n", k, v)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(schema3Image, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// loadSchema3 reads the image into a fresh memstore.
func loadSchema3(t *testing.T) (*memstore.Store, string) {
	t.Helper()
	f, err := os.Open(schema3Image)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st := memstore.New()
	var b store.Batch
	var ans string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "answers "):
			ans = strings.TrimPrefix(line, "answers ")
		default:
			kh, vh, _ := strings.Cut(line, " ")
			k, err1 := hex.DecodeString(kh)
			v, err2 := hex.DecodeString(vh)
			if err1 != nil || err2 != nil {
				t.Fatalf("bad image line %q", line)
			}
			b.Set(k, v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if err := st.Write(context.Background(), &b, store.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return st, ans
}

// failingStore fails every Write once writes have run out.
type failingStore struct {
	store.Store
	writes int // left before the failures start
}

var errInjected = errors.New("injected write failure")

func (s *failingStore) Write(ctx context.Context, b *store.Batch, o store.WriteOptions) error {
	if s.writes == 0 {
		return errInjected
	}
	s.writes--
	return s.Store.Write(ctx, b, o)
}

// schema3Refs are the messages, pages and groups the image's answers are
// of (buildSchema3 run on a throwaway store).
func schema3Refs(t *testing.T) schema3Fixture {
	e, err := Open(memstore.New(), migrateOpts...)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	return buildSchema3(context.Background(), t, e)
}

// checkMigrated opens st, which must migrate to the current schema, and
// compares every answer with the schema-3 engine's.
func checkMigrated(t *testing.T, st store.Store, fx schema3Fixture, want string) {
	t.Helper()
	ctx := context.Background()
	e, err := Open(st, migrateOpts...)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	vals, err := st.Get(ctx, [][]byte{keySchemaVersion})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(vals[0], []byte{schemaVersion}) {
		t.Fatalf("schema after the migration: %v", vals[0])
	}
	err = st.Scan(ctx, nil, nil, func(k, _ []byte) bool {
		if k[0] == prefixGroup {
			_, rest, _ := readLP(k[1:])
			if rest[0] == groupVersion && len(rest) != 9 {
				t.Errorf("a schema-3 version key is left: %q", k)
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Check(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(fx.answers(ctx, t, e))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("answers after the migration differ:\n got %s\nwant %s", got, want)
	}
}

// Open migrates a schema-3 store: every count, member page and group is
// as the schema-3 engine answered, Check passes, no old version key is left.
func TestMigrateSchema3(t *testing.T) {
	fx := schema3Refs(t)
	for _, batch := range []int{4096, 1, 3} {
		t.Run(fmt.Sprint("batch=", batch), func(t *testing.T) {
			defer func(n int) { migrateBatch = n }(migrateBatch)
			migrateBatch = batch
			st, want := loadSchema3(t)
			checkMigrated(t, st, fx, want)
		})
	}
}

// A migration cut off at any write (a crash: writes not made are lost,
// written ones kept) leaves a store the next Open finishes migrating.
func TestMigrateSchema3Resumes(t *testing.T) {
	fx := schema3Refs(t)
	defer func(n int) { migrateBatch = n }(migrateBatch)
	migrateBatch = 2
	ctx := context.Background()
	for writes := 0; ; writes++ {
		st, want := loadSchema3(t)
		fs := &failingStore{Store: st, writes: writes}
		e, err := Open(fs, migrateOpts...)
		if err == nil {
			// Enough writes for the whole migration: done.
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if writes < 3 {
				t.Fatalf("migration done in %d writes: the test cuts nothing", writes)
			}
			return
		}
		if !errors.Is(err, errInjected) {
			t.Fatalf("after %d writes: %v", writes, err)
		}
		vals, err := st.Get(ctx, [][]byte{keySchemaVersion})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(vals[0], []byte{3}) {
			t.Fatalf("a migration cut off after %d writes left schema %v", writes, vals[0])
		}
		checkMigrated(t, st, fx, want)
	}
}
