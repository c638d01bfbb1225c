package readreceipt

import (
	"context"

	"github.com/readreceipt/readreceipt/store"
)

// ingestBytes is the size from which a membership write (CreateGroup,
// AddGroupMembers, RemoveGroupMembers) goes to a store that can ingest
// (store.Ingester) as an ingestion rather than a Write: a batch this big
// would hold every durable write behind it in the store's log for as long
// as its bytes take to write and sync (about 30 MB for a million members),
// where an ingestion takes one synced metadata edit. Below it a Write is
// cheaper (an ingestion writes and syncs a file and the store's manifest).
// Tests lower it.
var ingestBytes = 4 << 20

// writeMembership writes a membership batch, durable on return when the
// engine writes durably (an ingestion always is).
func (e *embedded) writeMembership(ctx context.Context, b *store.Batch) error {
	if in, ok := e.st.(store.Ingester); ok && b.Size() >= ingestBytes {
		return in.Ingest(ctx, b)
	}
	return e.st.Write(ctx, b, e.writeOpts())
}
