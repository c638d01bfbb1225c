package readreceipt

// SetCollapseEvery lets tests collapse hot messages after n receipts; it
// returns a function that restores the default.
func SetCollapseEvery(n int) (restore func()) {
	old := collapseEvery
	collapseEvery = n
	return func() { collapseEvery = old }
}

// FoldReceiptLog folds the embedded engine's receipt log now, as the
// background folds and Close do.
func FoldReceiptLog(e *Engine) error { return e.be.(*embedded).rlog.fold(bgc) }

// SetFoldEvery lets tests fold the receipt log once n receipts wait; it
// returns a function that restores the default.
func SetFoldEvery(n int) (restore func()) {
	old := foldReceipts
	foldReceipts = n
	return func() { foldReceipts = old }
}

// SetIngestBytes lets tests send membership writes of n bytes and more to
// a store's Ingest; it returns a function that restores the default.
func SetIngestBytes(n int) (restore func()) {
	old := ingestBytes
	ingestBytes = n
	return func() { ingestBytes = old }
}

// PackingCache is a cache size (WithCacheBytes) whose shards keep one
// entry unpacked and room for a dozen packed ones: tests run with it to
// have nearly every message no call is using packed (packed.go).
const PackingCache = 64 << 10
