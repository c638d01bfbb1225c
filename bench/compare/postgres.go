package compare

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Postgres is PostgreSQL 15 with one row per (message, reader), the schema a
// team would write:
//
//	groups(gid PK, version, current, next_idx)
//	members(gid, idx, uid, joined, left_v; PK (gid, idx), UNIQUE (gid, uid))
//	messages(id bigserial PK, gid, mid, sender, version, recipients, read_count; UNIQUE (gid, mid))
//	receipts(msg, idx; PK (msg, idx))
//
// Recipients are found from versioned membership, like Map: a member is a
// recipient of a message if it joined at or before the message's version and
// had not left by it. A receipt call is one statement: it inserts the
// reader's rows with ON CONFLICT DO NOTHING, only for messages whose
// recipient it is, and increments the maintained read_count of the messages
// it inserted for, in the same implicit transaction, so the count is exact
// under concurrency. Counts read messages by (gid, mid); pages are keyset
// pages on the receipts primary key (read) or on members' (unread, with NOT
// EXISTS against receipts). Every statement is prepared once per connection
// (pgx's statement cache). Durability: fsync on and synchronous_commit on
// (bench/run starts the server so); SetSync(false) sets synchronous_commit
// off on new connections, for loading fixtures.
type Postgres struct {
	cfg    *pgx.ConnConfig
	schema string
	idle   chan *pgx.Conn
	slots  chan struct{}
	sync   atomic.Bool
	notify atomic.Int32

	mu   sync.Mutex // serialises SetSync with itself
	open []*pgx.Conn
}

var (
	_ System    = (*Postgres)(nil)
	_ Notifier  = (*Postgres)(nil)
	_ Footprint = (*Postgres)(nil)
	_ Syncer    = (*Postgres)(nil)
	_ Loader    = (*Postgres)(nil)
	_ Deleter   = (*Postgres)(nil)
)

const pgSchema = `
CREATE TABLE groups (gid text PRIMARY KEY, version bigint NOT NULL, current int NOT NULL, next_idx int NOT NULL);
CREATE TABLE members (gid text NOT NULL, idx int NOT NULL, uid text NOT NULL, joined bigint NOT NULL, left_v bigint,
  PRIMARY KEY (gid, idx), UNIQUE (gid, uid));
CREATE TABLE messages (id bigserial PRIMARY KEY, gid text NOT NULL, mid text NOT NULL, sender text NOT NULL,
  version bigint NOT NULL, recipients int NOT NULL, read_count int NOT NULL DEFAULT 0, UNIQUE (gid, mid));
CREATE TABLE receipts (msg bigint NOT NULL, idx int NOT NULL, PRIMARY KEY (msg, idx));
`

// NewPostgres connects to dsn and creates schema afresh (dropping one of
// that name), using up to maxConns connections.
func NewPostgres(ctx context.Context, dsn, schema string, maxConns int) (*Postgres, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["search_path"] = schema
	s := &Postgres{cfg: cfg, schema: schema, idle: make(chan *pgx.Conn, maxConns), slots: make(chan struct{}, maxConns)}
	s.sync.Store(true)
	c, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer s.release(c)
	q := pgx.Identifier{schema}.Sanitize()
	if _, err := c.Exec(ctx, "DROP SCHEMA IF EXISTS "+q+" CASCADE; CREATE SCHEMA "+q+";"+pgSchema); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Postgres) acquire(ctx context.Context) (*pgx.Conn, error) {
	select {
	case c := <-s.idle:
		return c, nil
	default:
	}
	select {
	case c := <-s.idle:
		return c, nil
	case s.slots <- struct{}{}:
		c, err := pgx.ConnectConfig(ctx, s.cfg)
		if err == nil && !s.sync.Load() {
			_, err = c.Exec(ctx, "SET synchronous_commit = off")
		}
		if err != nil {
			<-s.slots
			return nil, err
		}
		s.mu.Lock()
		s.open = append(s.open, c)
		s.mu.Unlock()
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Postgres) release(c *pgx.Conn) {
	if c.IsClosed() {
		s.mu.Lock()
		s.open = slices.DeleteFunc(s.open, func(o *pgx.Conn) bool { return o == c })
		s.mu.Unlock()
		<-s.slots
		return
	}
	s.idle <- c
}

func (s *Postgres) with(ctx context.Context, fn func(c *pgx.Conn) error) error {
	c, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer s.release(c)
	for try := 0; ; try++ {
		err = fn(c)
		var pe *pgconn.PgError
		// Concurrent receipts lock counter rows; retry the rare deadlock.
		if try < 5 && errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001") {
			continue
		}
		return err
	}
}

// Name implements System.
func (s *Postgres) Name() string { return "postgres" }

// CreateGroup implements System with COPY.
func (s *Postgres) CreateGroup(ctx context.Context, gid string, members []string) error {
	members = dedupe(members)
	return s.with(ctx, func(c *pgx.Conn) error {
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, "INSERT INTO groups VALUES ($1, 1, $2, $2) ON CONFLICT DO NOTHING", gid, len(members))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("%w: %q", ErrGroupExists, gid)
			}
			_, err = tx.CopyFrom(ctx, pgx.Identifier{"members"}, []string{"gid", "idx", "uid", "joined"},
				pgx.CopyFromSlice(len(members), func(i int) ([]any, error) {
					return []any{gid, int32(i), members[i], int64(1)}, nil
				}))
			return err
		})
	})
}

// AddMembers implements System.
func (s *Postgres) AddMembers(ctx context.Context, gid string, members []string) error {
	members = dedupe(members)
	return s.with(ctx, func(c *pgx.Conn) error {
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			var v int64
			var next, cur int32
			err := tx.QueryRow(ctx, "SELECT version, next_idx, current FROM groups WHERE gid = $1 FOR UPDATE", gid).Scan(&v, &next, &cur)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("%w: group %q", ErrNotFound, gid)
			} else if err != nil {
				return err
			}
			v++
			rows, err := tx.Query(ctx, "SELECT uid, left_v IS NOT NULL FROM members WHERE gid = $1 AND uid = ANY($2)", gid, members)
			if err != nil {
				return err
			}
			known := map[string]bool{}
			for rows.Next() {
				var u string
				var left bool
				if err := rows.Scan(&u, &left); err != nil {
					return err
				}
				if left {
					rows.Close()
					return fmt.Errorf("%w: %q", ErrRejoin, u)
				}
				known[u] = true
			}
			if err := rows.Err(); err != nil {
				return err
			}
			for _, m := range members {
				if known[m] {
					continue
				}
				if _, err := tx.Exec(ctx, "INSERT INTO members VALUES ($1, $2, $3, $4, NULL)", gid, next, m, v); err != nil {
					return err
				}
				next++
				cur++
			}
			_, err = tx.Exec(ctx, "UPDATE groups SET version = $2, next_idx = $3, current = $4 WHERE gid = $1", gid, v, next, cur)
			return err
		})
	})
}

// RemoveMembers implements System.
func (s *Postgres) RemoveMembers(ctx context.Context, gid string, members []string) error {
	return s.with(ctx, func(c *pgx.Conn) error {
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			var v int64
			err := tx.QueryRow(ctx, "SELECT version FROM groups WHERE gid = $1 FOR UPDATE", gid).Scan(&v)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("%w: group %q", ErrNotFound, gid)
			} else if err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, "UPDATE members SET left_v = $3 WHERE gid = $1 AND uid = ANY($2) AND left_v IS NULL", gid, members, v+1)
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, "UPDATE groups SET version = $2, current = current - $3 WHERE gid = $1", gid, v+1, tag.RowsAffected())
			return err
		})
	})
}

// Track implements System.
func (s *Postgres) Track(ctx context.Context, gid, msgID, sender string) error {
	return s.with(ctx, func(c *pgx.Conn) error {
		var found bool
		err := c.QueryRow(ctx, `
WITH g AS (SELECT version, current FROM groups WHERE gid = $1),
ins AS (INSERT INTO messages (gid, mid, sender, version, recipients)
  SELECT $1, $2, $3, g.version, g.current -
    (SELECT count(*) FROM members WHERE gid = $1 AND uid = $3 AND left_v IS NULL)
  FROM g ON CONFLICT (gid, mid) DO NOTHING RETURNING 1)
SELECT EXISTS (SELECT 1 FROM g)`, gid, msgID, sender).Scan(&found)
		if err == nil && !found {
			err = fmt.Errorf("%w: group %q", ErrNotFound, gid)
		}
		return err
	})
}

const pgReceipts = `
WITH r AS (SELECT idx, joined, left_v FROM members WHERE gid = $1 AND uid = $2),
ins AS (INSERT INTO receipts (msg, idx)
  SELECT m.id, r.idx FROM messages m, r
  WHERE m.gid = $1 AND m.mid = ANY($3) AND m.sender <> $2
    AND r.joined <= m.version AND (r.left_v IS NULL OR r.left_v > m.version)
  ORDER BY m.id
  ON CONFLICT DO NOTHING RETURNING msg),
upd AS (UPDATE messages m SET read_count = m.read_count + 1 FROM ins WHERE m.id = ins.msg
  RETURNING m.mid, m.read_count, m.recipients)
`

// Receipts implements System with one statement; while someone subscribed
// through s, the statement also NOTIFYs, which PostgreSQL delivers at commit.
func (s *Postgres) Receipts(ctx context.Context, gid, reader string, msgIDs []string) (int, error) {
	ids := slices.Clone(msgIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var n int
	err := s.with(ctx, func(c *pgx.Conn) error {
		var err error
		if s.notify.Load() > 0 {
			err = c.QueryRow(ctx, pgReceipts+`SELECT count(pg_notify($4, mid || chr(31) || $2 || chr(31) || read_count || chr(31) || (recipients - read_count))) FROM upd`,
				gid, reader, ids, s.channel(gid)).Scan(&n)
		} else {
			err = c.QueryRow(ctx, pgReceipts+`SELECT count(*) FROM upd`, gid, reader, ids).Scan(&n)
		}
		return err
	})
	return n, err
}

func (s *Postgres) channel(gid string) string { return s.schema + "_" + gid }

// Load implements Loader: one INSERT ... SELECT per 50,000 readers and the
// count in the same transaction, synchronous_commit off.
func (s *Postgres) Load(ctx context.Context, gid, msgID string, readers []string) error {
	return s.with(ctx, func(c *pgx.Conn) error {
		for len(readers) > 0 {
			n := min(len(readers), 50_000)
			err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
					return err
				}
				tag, err := tx.Exec(ctx, `INSERT INTO receipts (msg, idx)
SELECT m.id, mb.idx FROM messages m, members mb WHERE m.gid = $1 AND m.mid = $2 AND mb.gid = $1 AND mb.uid = ANY($3)`,
					gid, msgID, readers[:n])
				if err != nil {
					return err
				}
				if tag.RowsAffected() != int64(n) {
					return fmt.Errorf("%w: %d of %d readers are members", ErrBadInput, tag.RowsAffected(), n)
				}
				_, err = tx.Exec(ctx, "UPDATE messages SET read_count = read_count + $3 WHERE gid = $1 AND mid = $2", gid, msgID, n)
				return err
			})
			if err != nil {
				return err
			}
			readers = readers[n:]
		}
		return nil
	})
}

// Counts implements System.
func (s *Postgres) Counts(ctx context.Context, gid string, msgIDs []string) ([]Count, error) {
	out := make([]Count, len(msgIDs))
	err := s.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, "SELECT mid, recipients, read_count FROM messages WHERE gid = $1 AND mid = ANY($2)", gid, msgIDs)
		if err != nil {
			return err
		}
		byID := make(map[string]Count, len(msgIDs))
		for rows.Next() {
			var id string
			var rc, rd int32
			if err := rows.Scan(&id, &rc, &rd); err != nil {
				return err
			}
			byID[id] = Count{Found: true, Read: int(rd), Unread: int(rc - rd)}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for i, id := range msgIDs {
			out[i] = byID[id]
		}
		return nil
	})
	return out, err
}

const (
	// The pages are written so that they have one plan whatever the
	// parameters: a LATERAL keyset range with its LIMIT, and scalar
	// subqueries that PostgreSQL cannot turn into a hash join over the whole
	// message or group.
	pgReadPage = `
WITH m AS (SELECT id FROM messages WHERE gid = $1 AND mid = $2)
SELECT -1, '' FROM m
UNION ALL
SELECT r.idx, (SELECT uid FROM members mb WHERE mb.gid = $1 AND mb.idx = r.idx)
FROM m, LATERAL (SELECT idx FROM receipts WHERE msg = m.id AND idx >= $3 ORDER BY idx LIMIT $4) r`
	pgUnreadPage = `
WITH m AS (SELECT id, version, sender FROM messages WHERE gid = $1 AND mid = $2)
SELECT -1, '' FROM m
UNION ALL
SELECT u.idx, u.uid FROM m, LATERAL (
  SELECT mb.idx, mb.uid FROM members mb
  WHERE mb.gid = $1 AND mb.idx >= $3
    AND mb.joined <= m.version AND (mb.left_v IS NULL OR mb.left_v > m.version) AND mb.uid <> m.sender
    AND NOT (SELECT EXISTS (SELECT 1 FROM receipts r WHERE r.msg = m.id AND r.idx = mb.idx))
  ORDER BY mb.idx LIMIT $4) u`
)

// Page implements System with one keyset query of n+1 rows.
func (s *Postgres) Page(ctx context.Context, gid, msgID string, unread bool, cursor string, n int) ([]string, string, bool, error) {
	if err := checkPage(n); err != nil {
		return nil, "", false, err
	}
	at, err := parseCursor(cursor)
	if err != nil {
		return nil, "", false, err
	}
	q := pgReadPage
	if unread {
		q = pgUnreadPage
	}
	var users []string
	var next string
	found, done := false, true
	err = s.with(ctx, func(c *pgx.Conn) error {
		users, found, done = users[:0], false, true
		rows, err := c.Query(ctx, q, gid, msgID, int32(at), n+1)
		if err != nil {
			return err
		}
		for rows.Next() {
			var idx int32
			var u string
			if err := rows.Scan(&idx, &u); err != nil {
				return err
			}
			switch {
			case idx < 0:
				found = true
			case len(users) == n:
				done, next = false, formatCursor(uint32(idx))
			default:
				users = append(users, u)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, "", false, err
	}
	if !found {
		return nil, "", false, fmt.Errorf("%w: message %q", ErrNotFound, msgID)
	}
	return users, next, done, nil
}

// Subscribe implements Notifier with LISTEN on its own connection.
func (s *Postgres) Subscribe(ctx context.Context, gid string, fn func(Event)) (func(), error) {
	c, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return nil, err
	}
	if _, err := c.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel(gid)}.Sanitize()); err != nil {
		c.Close(ctx)
		return nil, err
	}
	s.notify.Add(1)
	lctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nt, err := c.WaitForNotification(lctx)
			if err != nil {
				return
			}
			f := strings.Split(nt.Payload, "\x1f")
			if len(f) != 4 {
				continue
			}
			r, _ := strconv.Atoi(f[2])
			u, _ := strconv.Atoi(f[3])
			fn(Event{MsgID: f[0], Reader: f[1], Read: r, Unread: u})
		}
	}()
	return func() {
		s.notify.Add(-1)
		cancel()
		<-done
		c.Close(context.Background())
	}, nil
}

// Delete implements Deleter.
func (s *Postgres) Delete(ctx context.Context, gid string, msgIDs []string) error {
	return s.with(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, `WITH d AS (DELETE FROM messages WHERE gid = $1 AND mid = ANY($2) RETURNING id)
DELETE FROM receipts WHERE msg IN (SELECT id FROM d)`, gid, msgIDs)
		return err
	})
}

// Footprint implements Footprint: after VACUUM FULL (the tables at their
// most compact), the size of the schema's tables with their indexes and
// TOAST. PostgreSQL keeps hot data in shared buffers page by page, so
// memory is reported as the same figure.
func (s *Postgres) Footprint(ctx context.Context) (int64, int64, error) {
	var n int64
	err := s.with(ctx, func(c *pgx.Conn) error {
		if _, err := c.Exec(ctx, "VACUUM FULL groups, members, messages, receipts"); err != nil {
			return err
		}
		return c.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE ns.nspname = $1 AND c.relkind = 'r'`, s.schema).Scan(&n)
	})
	return n, n, err
}

// SetSync implements Syncer: it closes the idle connections, so that the
// next ones start with the new synchronous_commit. Call it while no other
// call is in flight.
func (s *Postgres) SetSync(ctx context.Context, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sync.Store(on)
	for {
		select {
		case c := <-s.idle:
			c.Close(ctx)
			s.open = slices.DeleteFunc(s.open, func(o *pgx.Conn) bool { return o == c })
			<-s.slots
		default:
			return nil
		}
	}
}

// Close implements System.
func (s *Postgres) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.open {
		c.Close(context.Background())
	}
	s.open = nil
	return nil
}
